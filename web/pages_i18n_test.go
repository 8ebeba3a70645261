package web

import (
	"net/http/httptest"
	"strings"
	"testing"
)

type m = map[string]any

// samplePages are every built-in template with data in every branch
// that shows text, the texts being what Gatehouse passes (English).
var samplePages = []struct {
	name string
	page Page
}{
	{"login.html", Page{Title: "Sign in", Message: "Wrong username or password.", Data: m{
		"Client": "Wiki <b>", "Need": Sprintf("You are signed in, but %s asks for more than your sign-in so far (level %s).", "Wiki", "2"),
		"Intro": "Enter your username and password.", "Submit": "Sign in", "Remember": Sprintf("Trust this browser for %s", Duration(30*24*3600e9)),
		"Fields": []m{{"Name": "username", "Label": "Username or email", "Type": "text"}, {"Name": "password", "Label": "Password", "Type": "password"}},
		"Offers": []m{{"Name": "Forgot password?", "URL": "/x"}}, "Others": []m{{"Name": Sprintf("Sign in with %s", "Google"), "URL": "/y", "Mark": "google"}}}}},
	{"login.html", Page{Title: "Add a passkey", Data: m{"Intro": "Create a passkey for your account: your device will ask for your fingerprint, face, PIN or a touch of your key.",
		"NoSubmit": true, "ScriptButton": "Create a passkey", "NoScript": "Passkeys need JavaScript, which is off in this browser. Turn it on, or use another method below.",
		"Fields": []m{{"Name": "keyname", "Label": "Name of this passkey (optional)", "Type": "text", "Placeholder": "My laptop", "MaxLength": 64, "Optional": true}}}}},
	{"methods.html", Page{Title: "Sign in", Data: m{"Client": "Wiki", "Choices": []m{{"Name": "Email me a sign-in link", "URL": "/x"}}}}},
	{"choose.html", Page{Title: "Choose an account", Data: m{"Client": "Wiki", "Choices": []m{{"Name": "alice", "URL": "/x"}}}}},
	{"consent.html", Page{Title: "Allow access?", Data: m{"Client": "Wiki", "Offline": true,
		"Items": []m{{"Key": "openid", "Description": "Sign you in with your account", "Required": true}, {"Key": "email", "Description": "Your email address"}}}}},
	{"account.html", Page{Title: "Your account", Data: m{"User": "alice",
		"Sessions": []m{{"Current": true, "Device": "Firefox on Linux", "IP": "192.0.2.1", "Created": "2026-11-26", "LastSeen": "2026-11-26", "Modules": "password", "Clients": "Wiki"},
			{"Created": "2026-11-25", "LastSeen": "2026-11-25"}},
		"Parts": []m{{"Title": "Passkeys and security keys", "Module": "webauthn", "Items": []m{{"ID": "k1", "Label": "My laptop"}}, "AddURL": "/add", "Add": "Add a passkey"}},
		"Apps":  []m{{"Name": "Wiki", "ClientID": "wiki", "Granted": []string{"Your email address", "The groups you belong to"}, "Offline": true}}}}},
	{"home.html", Page{Title: "Sign-in service", Data: m{"User": "alice", "Account": "/account", "Logout": "/logout"}}},
	{"home.html", Page{Title: "Sign-in service", Data: m{"Site": "example.com", "Account": "/account"}}},
	{"logged_out.html", Page{Title: "Signed out", Data: m{"Upstream": []m{{"Name": "Wiki", "URL": "https://wiki/logout"}}, "Continue": "/x", "Frames": []string{"https://a/fc"}}}},
	{"notice.html", Page{Title: "Check your mail", Data: m{"Text": Sprintf("If the address is known here, a message with a link is on its way. The link works once, for %s.", Duration(15*60e9)), "Link": "/x", "LinkText": "Sign in again"}}},
	{"error.html", Page{Title: "This sign-in has expired", Message: "The sign-in page was open too long, was already used, or was started in another browser. Go back to the application and sign in again."}},
	{"form_post.html", Page{Title: "Continue", Data: m{"Action": "https://rp/cb", "Fields": map[string]string{"code": "x"}}}},
	{"device.html", Page{Title: "Connect a device", Data: m{"Code": "ABCD-EFGH"}}},
	{"device_allow.html", Page{Title: Sprintf("Allow %s on your device?", "TV"), Data: m{"Client": "TV", "User": "alice", "Code": "ABCD-EFGH", "Scopes": []string{"Your email address"}}}},
	{"confirm.html", Page{Title: "Signed out", Data: m{"Question": "You are signed out of this site.", "Submit": "Sign out"}}},
}

// Every page renders in every shipped language, in that language, with
// no text left in English.
func TestPagesInEveryLanguage(t *testing.T) {
	Gaps()
	for _, lang := range Languages() {
		for _, sp := range samplePages {
			p := sp.page
			p.Lang, p.Static = lang, "/static"
			w := httptest.NewRecorder()
			Render(w, 200, sp.name, p)
			body := w.Body.String()
			if w.Code != 200 || !strings.Contains(body, `<html lang="`+lang+`" dir="ltr">`) {
				t.Fatalf("%s in %s: %d\n%s", sp.name, lang, w.Code, body)
			}
			if w.Header().Get("Content-Language") != lang {
				t.Errorf("%s in %s: Content-Language %q", sp.name, lang, w.Header().Get("Content-Language"))
			}
			if strings.Contains(body, textMark) || strings.Contains(body, "\ufffd") || strings.Contains(body, "%!") {
				t.Errorf("%s in %s: a text was not formatted:\n%s", sp.name, lang, body)
			}
			if strings.Contains(body, "Wiki <b>") {
				t.Errorf("%s in %s: a name was not escaped", sp.name, lang)
			}
			if lang != "en" && strings.Contains(body, "Secured by Gatehouse") {
				t.Errorf("%s in %s: still English", sp.name, lang)
			}
		}
	}
	if g := Gaps(); len(g) > 0 {
		t.Fatalf("texts of the built-in pages without a translation:\n%s", strings.Join(g, "\n"))
	}
}

// A field can be optional, bounded and have a placeholder (translated).
func TestOptionalField(t *testing.T) {
	p := samplePages[1].page
	p.Lang = "fr"
	body := render(t, "login.html", p)
	want := `<input id="f-keyname" name="keyname" type="text" dir="auto" placeholder="Mon ordinateur portable" maxlength="64">`
	if !strings.Contains(body, want) || !strings.Contains(body, `data-failed="La clé d’accès n’a pas fonctionné." hidden>Créer une clé d’accès</button>`) ||
		!strings.Contains(body, "<noscript><p class=\"message\" role=\"alert\">Les clés d’accès nécessitent JavaScript") {
		t.Fatalf("passkey page in French:\n%s", body)
	}
}

// Text translates the answers a page's script shows.
func TestText(t *testing.T) {
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Accept-Language", "es")
	w := Localize(httptest.NewRecorder(), r)
	if got := Text(w, "This passkey is registered already."); got != "Esta llave de acceso ya está registrada." {
		t.Fatalf("Text: %q", got)
	}
	if got := Text(httptest.NewRecorder(), "This passkey is registered already."); got != "This passkey is registered already." {
		t.Fatalf("Text without Localize: %q", got)
	}
}
