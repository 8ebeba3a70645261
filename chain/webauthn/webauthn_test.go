package webauthn_test

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/chain"
	"github.com/gatehouse-idp/gatehouse/internal/chaintest"
)

// A level that needs a key registers one on the spot after the
// password; the next sign-in asks that key (and only that user's keys),
// and passes with the key's amr values.
func TestSecondFactorRegisterAndUse(t *testing.T) {
	v := newEnv(t, twoFactor(`{}`)...)
	k := newSoftKey(t, v.rpID, v.issuer)
	b := v.browser()
	page := b.password("alice", "2")
	if !strings.Contains(page, "Add a passkey") || !strings.Contains(page, `id="gh-passkey"`) || !strings.Contains(page, "<noscript>") {
		t.Fatalf("no registration page:\n%s", page)
	}
	st, begun, fin := b.ceremony(page, "Key", k, nil, "  My\tlaptop\x00 ")
	if st != http.StatusOK || begun.Data.Kind != "create" || !strings.HasPrefix(fin.Next, "/login?attempt=") {
		t.Fatalf("registration: %d %+v %+v", st, begun, fin)
	}
	sel := begun.Data.Options["authenticatorSelection"].(map[string]any)
	if begun.Data.Options["rp"].(map[string]any)["id"] != "idp.localhost" || sel["residentKey"] != "preferred" || sel["userVerification"] != "preferred" {
		t.Fatalf("creation options %+v", begun.Data.Options)
	}
	b.get(fin.Next)
	if got := b.done(); got != v.done(v.alice, "pwd", "hwk", "user", "mfa") {
		t.Fatalf("after registration: %q", got)
	}
	if v.trail.count(audit.PasskeyRegistered, "My laptop") != 1 {
		t.Fatal("registration not audited with its name")
	}

	b = v.browser()
	page = b.password("alice", "2")
	if !strings.Contains(page, "Use your passkey") {
		t.Fatalf("no key page:\n%s", page)
	}
	st, begun, fin = b.ceremony(page, "Key", k, nil, "")
	allow, _ := begun.Data.Options["allowCredentials"].([]any)
	if st != http.StatusOK || begun.Data.Kind != "get" || len(allow) != 1 || allow[0].(map[string]any)["id"] != enc(k.id) {
		t.Fatalf("assertion: %d %+v %+v", st, begun, fin)
	}
	b.get(fin.Next)
	if got := b.done(); got != v.done(v.alice, "pwd", "hwk", "user", "mfa") {
		t.Fatalf("second factor: %q", got)
	}
	if v.trail.count(audit.PasskeyUsed, "") != 1 {
		t.Fatal("use not audited")
	}

	// Without user verification: hwk alone (the engine adds mfa for
	// the password).
	k.noUV = true
	b = v.browser()
	page = b.password("alice", "2")
	if st, _, fin = b.ceremony(page, "Key", k, nil, ""); st != http.StatusOK {
		t.Fatalf("without UV: %d %+v", st, fin)
	}
	b.get(fin.Next)
	if got := b.done(); got != v.done(v.alice, "pwd", "hwk", "mfa") {
		t.Fatalf("without UV: %q", got)
	}

	// A synced passkey (backup eligible) is a software-secured key.
	ks := newSoftKey(t, v.rpID, v.issuer)
	ks.synced = true
	b = v.browser()
	if st, _, fin = b.ceremony(b.password("bob", "2"), "Key", ks, nil, ""); st != http.StatusOK {
		t.Fatalf("synced: %d %+v", st, fin)
	}
	b.get(fin.Next)
	if got := b.done(); got != v.done(v.bob, "pwd", "swk", "user", "mfa") {
		t.Fatalf("synced: %q", got)
	}
}

// A key registered by another user is refused as this user's second
// factor, audited and counted; so is an assertion answering another
// challenge (a replay), and a continuation answered twice.
func TestRefusals(t *testing.T) {
	v := newEnv(t, twoFactor(`{}`)...)
	ka, kb := newSoftKey(t, v.rpID, v.issuer), newSoftKey(t, v.rpID, v.issuer)
	v.register("alice", ka)
	v.register("bob", kb)

	b := v.browser()
	page := b.password("alice", "2")
	st, _, fin := b.ceremony(page, "Key", kb, nil, "")
	if st != http.StatusUnauthorized || !strings.Contains(fin.Error, "not accepted") {
		t.Fatalf("bob's key for alice: %d %+v", st, fin)
	}
	if v.trail.count(audit.PasskeyRefused, "") != 1 || v.trail.count(audit.LoginFailed, "not accepted") != 1 {
		t.Fatal("refusal not audited")
	}

	// A replay: an assertion made for one challenge, sent to another.
	f := chaintest.Form(page)
	base := map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf")}
	_, r1 := b.round("Key", "begin", base)
	old := ka.get(r1.Data.Options)
	with := func(cont string, cred any) map[string]any {
		return map[string]any{"attempt": base["attempt"], "csrf": base["csrf"], "continuation": cont, "data": map[string]any{"credential": cred}}
	}
	_, r2 := b.round("Key", "begin", base)
	if st, fin := b.round("Key", "finish", with(r2.Continuation, old)); st != http.StatusUnauthorized {
		t.Fatalf("assertion for another challenge: %d %+v", st, fin)
	}
	// The right one for r1 passes once; the same continuation again is
	// refused by the engine.
	st, fin = b.round("Key", "finish", with(r1.Continuation, old))
	if st != http.StatusOK {
		t.Fatalf("assertion: %d %+v", st, fin)
	}
	next := fin.Next
	if st, fin := b.round("Key", "finish", with(r1.Continuation, old)); st != http.StatusBadRequest {
		t.Fatalf("replayed continuation: %d %+v", st, fin)
	}
	b.get(next)
	if got := b.done(); got != v.done(v.alice, "pwd", "hwk", "user", "mfa") {
		t.Fatalf("after the refusals: %q", got)
	}

	// Garbage answers are refusals, never a crash or a pass.
	b = v.browser()
	page = b.password("bob", "2")
	f = chaintest.Form(page)
	for _, bad := range []any{"x", map[string]any{"id": 1}, map[string]any{"id": enc(kb.id), "rawId": enc(kb.id), "type": "public-key", "response": map[string]any{}}} {
		_, r := b.round("Key", "begin", map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf")})
		st, fin := b.round("Key", "finish", map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf"), "continuation": r.Continuation, "data": map[string]any{"credential": bad}})
		if st != http.StatusUnauthorized {
			t.Fatalf("answer %v: %d %+v", bad, st, fin)
		}
	}
}

// With a passwordless start instance the sign-in form offers passkeys
// in its username field's autofill (conditional mediation) and the
// passkey's own page as another method; one gesture with a key
// registered after a password reaches both its levels, for the user
// its handle names, with no username typed.
func TestPasswordless(t *testing.T) {
	v := newEnv(t, withStart(`{}`)...)
	k := newSoftKey(t, v.rpID, v.issuer)
	v.register("alice", k)

	b := v.browser()
	_, page, h := b.get("/start?acr=2")
	csp := h.Get("Content-Security-Policy")
	begin := v.issuer + "/login/m/Passkey/begin"
	if !strings.Contains(page, `autocomplete="username webauthn"`) || !strings.Contains(page, `name="password"`) ||
		!strings.Contains(page, `src="`+v.issuer+`/static/webauthn.js"`) || !strings.Contains(page, `data-begin="`+begin+`"`) ||
		!strings.Contains(csp, "script-src "+v.issuer+"/static/webauthn.js;") || !strings.Contains(csp, "connect-src "+begin+" ") {
		t.Fatalf("sign-in form without passkey autofill (CSP %q):\n%s", csp, page)
	}
	if !strings.Contains(page, ">Passkey</a>") {
		t.Fatalf("the passkey page is not offered:\n%s", page)
	}
	st, begun, fin := b.ceremony(page, "Passkey", k, map[string]any{"conditional": true}, "")
	if st != http.StatusOK || begun.Data.Mediation != "conditional" || begun.Data.Options["allowCredentials"] != nil ||
		begun.Data.Options["userVerification"] != "required" {
		t.Fatalf("passwordless: %d %+v %+v", st, begun, fin)
	}
	b.get(fin.Next)
	// Done at once: the gesture reached level 2 (else the next step
	// would be asked and there would be no session yet).
	if got := b.done(); got != v.done(v.alice, "hwk", "user", "mfa") {
		t.Fatalf("passwordless: %q", got)
	}

	// Without user verification a passwordless sign-in is refused.
	k.noUV = true
	b = v.browser()
	_, page, _ = b.get("/start")
	if st, _, fin := b.ceremony(page, "Passkey", k, nil, ""); st != http.StatusUnauthorized {
		t.Fatalf("passwordless without UV: %d %+v", st, fin)
	}
	// A key nobody registered is refused the same way.
	b = v.browser()
	_, page, _ = b.get("/start")
	stranger := newSoftKey(t, v.rpID, v.issuer)
	stranger.handle = []byte("nobody's handle")
	if st, _, fin := b.ceremony(page, "Passkey", stranger, nil, ""); st != http.StatusUnauthorized || !strings.Contains(fin.Error, "not accepted") {
		t.Fatalf("unknown passkey: %d %+v", st, fin)
	}
}

// A signature counter that goes backwards is logged and audited, and
// refused with refuse_cloned.
func TestClonedKey(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		settings := `{}`
		if refuse {
			settings = `{"refuse_cloned": true}`
		}
		v := newEnv(t, twoFactor(settings)...)
		k := newSoftKey(t, v.rpID, v.issuer)
		k.count = 10
		b := v.browser()
		b.ceremony(b.password("alice", "2"), "Key", k, nil, "")
		k.count = 3
		b = v.browser()
		st, _, fin := b.ceremony(b.password("alice", "2"), "Key", k, nil, "")
		if v.trail.count(audit.PasskeyCloned, "sign count 4 not above 10") != 1 {
			t.Fatalf("refuse %v: clone not audited", refuse)
		}
		if want := map[bool]int{false: 200, true: 401}[refuse]; st != want {
			t.Fatalf("refuse %v: %d %+v", refuse, st, fin)
		}
	}
}

// Admins list and remove a user's keys; removed keys no longer pass.
func TestAdminActions(t *testing.T) {
	v := newEnv(t, twoFactor(`{}`)...)
	k := newSoftKey(t, v.rpID, v.issuer)
	b := v.browser()
	b.ceremony(b.password("alice", "2"), "Key", k, nil, "Yubi")
	ctx := context.Background()
	out, err := v.e.Act(ctx, "Key", "list", v.alice)
	if err != nil || !strings.Contains(out.Message, "Yubi  id "+enc(k.id)) || !strings.Contains(out.Message, "bound to its device") {
		t.Fatalf("list: %+v %v", out, err)
	}
	if out, err = v.e.Act(ctx, "Key", "remove", v.alice); err != nil || out.Message != "1 passkey of alice removed" {
		t.Fatalf("remove: %+v %v", out, err)
	}
	if v.trail.count(audit.PasskeyRemoved, "administrator") != 1 {
		t.Fatal("removal not audited")
	}
	if out, _ = v.e.Act(ctx, "Key", "list", v.alice); out.Message != "alice has no passkeys" {
		t.Fatalf("after remove: %+v", out)
	}
	// Level 2 asks for a new key now: the old one is gone.
	b = v.browser()
	if page := b.password("alice", "2"); !strings.Contains(page, "Add a passkey") {
		t.Fatalf("after removal:\n%s", page)
	}
}

// With an AAGUID allow-list, a key without attestation is refused.
func TestAAGUIDAllowList(t *testing.T) {
	v := newEnv(t, twoFactor(`{"attestation": "direct", "aaguids": ["2fc0579f-8113-47ea-b116-bb5a8db9202a"]}`)...)
	k := newSoftKey(t, v.rpID, v.issuer)
	b := v.browser()
	st, begun, fin := b.ceremony(b.password("alice", "2"), "Key", k, nil, "")
	if begun.Data.Options["attestation"] != "direct" || st != http.StatusUnauthorized || !strings.Contains(fin.Error, "not allowed") {
		t.Fatalf("unattested key: %d %+v %+v", st, begun.Data.Options, fin)
	}
	if v.trail.count(audit.PasskeyRefused, "no attestation statement") != 1 {
		t.Fatal("refusal not audited")
	}
}

// Settings are checked when the chain is built, with the setting named.
func TestSettingsErrors(t *testing.T) {
	v := newEnv(t, twoFactor(`{}`)...)
	for _, c := range []struct{ settings, want string }{
		{`{"user_verification": "always"}`, "user_verification is required, preferred or discouraged"},
		{`{"attestation": "enterprise"}`, "attestation is none, indirect or direct"},
		{`{"resident_key": "maybe"}`, "resident_key is required"},
		{`{"aaguids": ["2fc0579f-8113-47ea-b116-bb5a8db9202a"]}`, "aaguids need attestation"},
		{`{"attestation": "direct", "aaguids": ["yubikey"]}`, `aaguid "yubikey" is not an AAGUID`},
		{`{"attestation": "direct", "aaguids": ["00000000-0000-0000-0000-000000000000"]}`, "names no model"},
		{`{"timeout": "1h"}`, "timeout is between 10s and 5m0s"},
		{`{"origins": ["https://a.example/path"]}`, `origin "https://a.example/path" is not an origin`},
		{`{"rp_id": "https://example.com"}`, "is no domain name"},
		{`{"rp_id": "other.example"}`, `rp_id "other.example" is not the issuer's host`},
		{`{"colour": "blue"}`, `has no setting "colour"`},
	} {
		err := chain.CheckSettings("webauthn", json.RawMessage(c.settings))
		if err == nil {
			_, err = chain.New(chain.Config{Modules: twoFactor(c.settings)}, v.opt)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.settings, err, c.want)
		}
	}
	for settings, want := range map[string]string{
		`{"resident_key": "discouraged"}`: "resident_key must be required or preferred",
		`{"mandatory": true}`:             "mandatory is for a webauthn module after another",
	} {
		if _, err := chain.New(chain.Config{Modules: withStart(settings)}, v.opt); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start with %s: %v", settings, err)
		}
	}
}

// mandatory: every user is asked for a key after the password, and one
// without creates it then, without any level asking.
func TestMandatory(t *testing.T) {
	v := newEnv(t, twoFactor(`{"mandatory": true}`)...)
	b := v.browser()
	page := b.password("alice", "")
	if !strings.Contains(page, "Add a passkey") {
		t.Fatalf("no registration for a mandatory key:\n%s", page)
	}
	if st, _, fin := b.ceremony(page, "Key", newSoftKey(t, v.rpID, v.issuer), nil, ""); st != http.StatusOK {
		t.Fatalf("register: %d %+v", st, fin)
	}
	// The next sign-in asks for it.
	b = v.browser()
	if page := b.password("alice", ""); !strings.Contains(page, "Use your passkey") {
		t.Fatalf("key not asked:\n%s", page)
	}
}

// Two registrations at once for a user without keys (two browsers):
// the first stores its key, the second is told to try again (its user
// handle lost the race) and stores nothing.
func TestRegistrationRace(t *testing.T) {
	v := newEnv(t, twoFactor(`{}`)...)
	b1, b2 := v.browser(), v.browser()
	p1, p2 := b1.password("alice", "2"), b2.password("alice", "2")
	begin := func(b *browser, page string) (map[string]any, round) {
		f := chaintest.Form(page)
		req := map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf")}
		_, r := b.round("Key", "begin", req)
		return req, r
	}
	req1, r1 := begin(b1, p1)
	req2, r2 := begin(b2, p2)
	k1, k2 := newSoftKey(t, v.rpID, v.issuer), newSoftKey(t, v.rpID, v.issuer)
	req1["continuation"], req1["data"] = r1.Continuation, map[string]any{"credential": k1.create(r1.Data.Options)}
	req2["continuation"], req2["data"] = r2.Continuation, map[string]any{"credential": k2.create(r2.Data.Options)}
	if st, fin := b1.round("Key", "finish", req1); st != http.StatusOK {
		t.Fatalf("first: %d %+v", st, fin)
	}
	if st, fin := b2.round("Key", "finish", req2); st != http.StatusUnauthorized || !strings.Contains(fin.Error, "meanwhile") {
		t.Fatalf("second: %d %+v", st, fin)
	}
	out, _ := v.e.Act(context.Background(), "Key", "list", v.alice)
	if strings.Count(out.Message, " id ") != 1 {
		t.Fatalf("keys after the race: %s", out.Message)
	}
}

// Answers made for another site are refused: another origin (a phishing
// page relaying the ceremony), another relying party id, and a
// registration signed for another site.
func TestOtherSites(t *testing.T) {
	v := newEnv(t, withStart(`{}`)...)
	k := newSoftKey(t, v.rpID, v.issuer)
	v.register("alice", k)
	for _, c := range []struct {
		name         string
		origin, rpID string
	}{
		{"phishing origin", "http://idp.localhost.evil.example", v.rpID},
		{"other port", "http://idp.localhost:1", v.rpID},
		{"https origin", "https" + strings.TrimPrefix(v.issuer, "http"), v.rpID},
		{"other rp id", v.issuer, "evil.example"},
	} {
		k.origin, k.rpID = c.origin, c.rpID
		p := v.browser()
		_, page, _ := p.get("/start")
		if st, _, fin := p.ceremony(page, "Passkey", k, nil, ""); st != http.StatusUnauthorized {
			t.Errorf("%s: %d %+v", c.name, st, fin)
		}
		n := newSoftKey(t, c.rpID, c.origin)
		p = v.browser()
		if st, _, fin := p.ceremony(p.password("bob", "2"), "Key", n, nil, ""); st != http.StatusUnauthorized {
			t.Errorf("%s registration: %d %+v", c.name, st, fin)
		}
	}
	if v.trail.count(audit.PasskeyRefused, "") != 8 {
		t.Fatalf("refusals audited: %d", v.trail.count(audit.PasskeyRefused, ""))
	}
}

// Failed assertions are regulated like wrong passwords: after the free
// ones the account is delayed (429, audited), and a right key does not
// get through meanwhile.
func TestRegulation(t *testing.T) {
	v := newEnv(t, twoFactor(`{}`)...)
	ka, kb := newSoftKey(t, v.rpID, v.issuer), newSoftKey(t, v.rpID, v.issuer)
	v.register("alice", ka)
	v.register("bob", kb)
	b := v.browser()
	page := b.password("alice", "2")
	f := chaintest.Form(page)
	base := map[string]any{"attempt": f.Get("attempt"), "csrf": f.Get("csrf")}
	try := func(k *softKey) int {
		st, r := b.round("Key", "begin", base)
		if st != http.StatusOK {
			return st
		}
		st, _ = b.round("Key", "finish", map[string]any{"attempt": base["attempt"], "csrf": base["csrf"], "continuation": r.Continuation,
			"data": map[string]any{"credential": k.get(r.Data.Options)}})
		return st
	}
	var got []int
	for range 4 {
		got = append(got, try(kb))
	}
	if got[0] != http.StatusUnauthorized || got[1] != http.StatusUnauthorized || got[3] != http.StatusTooManyRequests {
		t.Fatalf("wrong keys one after another: %v", got)
	}
	if st := try(ka); st != http.StatusTooManyRequests {
		t.Fatalf("the right key while delayed: %d", st)
	}
	if v.trail.count(audit.RateLimited, "") == 0 {
		t.Fatal("delay not audited")
	}
}

// The passkey autofill is on the sign-in form only: the pages of the
// offers under it (sign-up asks for a new username) have none.
func TestAutofillOnSignInFormOnly(t *testing.T) {
	v := newEnv(t, append(withStart(`{}`), chain.ModuleConfig{Name: "Create an account", Kind: "registration", Levels: []string{"1"}})...)
	b := v.browser()
	_, page, _ := b.get("/start")
	if !strings.Contains(page, `autocomplete="username webauthn"`) || !strings.Contains(page, ">Create an account</a>") {
		t.Fatalf("sign-in form:\n%s", page)
	}
	_, page, h := b.get(linkTo(t, page, "Create an account"))
	if !strings.Contains(page, `name="password_confirm"`) || strings.Contains(page, "webauthn") || h.Get("Content-Security-Policy") == "" ||
		strings.Contains(h.Get("Content-Security-Policy"), "script-src") {
		t.Fatalf("sign-up page (CSP %q):\n%s", h.Get("Content-Security-Policy"), page)
	}
}

var linkRE = regexp.MustCompile(`<a (?:class="button" )?href="([^"]+)">([^<]+)</a>`)

// linkTo is the URL of page's link labelled label.
func linkTo(t *testing.T, page, label string) string {
	t.Helper()
	for _, m := range linkRE.FindAllStringSubmatch(page, -1) {
		if html.UnescapeString(m[2]) == label {
			return html.UnescapeString(m[1])
		}
	}
	t.Fatalf("no link %q on:\n%s", label, page)
	return ""
}
