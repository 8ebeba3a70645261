package caddymodule

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of testdata/*.caddyfiletest")

func adapt(t *testing.T, input string) ([]byte, error) {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
	return out, err
}

// TestCaddyfileGolden adapts each testdata/*.caddyfiletest (a Caddyfile,
// a line of dashes, the JSON it must become) and compares.
func TestCaddyfileGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.caddyfiletest")
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(raw), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			out, err := adapt(t, input)
			if err != nil {
				t.Fatalf("adapt: %v", err)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, out, "", "\t")
			got := pretty.String() + "\n"
			if *update {
				os.WriteFile(f, []byte(input+"\n----------\n"+got), 0o644)
				return
			}
			if got != want {
				t.Fatalf("adapted JSON differs (run go test ./caddymodule -update to accept):\n%s", got)
			}
			// And back: the JSON decodes into the app without loss.
			var cfg struct {
				Apps struct {
					Gatehouse json.RawMessage `json:"gatehouse"`
				} `json:"apps"`
			}
			json.Unmarshal(out, &cfg)
			if len(cfg.Apps.Gatehouse) > 0 {
				var app App
				dec := json.NewDecoder(bytes.NewReader(cfg.Apps.Gatehouse))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&app); err != nil {
					t.Fatalf("app JSON does not map back: %v", err)
				}
				again, _ := json.Marshal(app)
				var a1, a2 any
				json.Unmarshal(cfg.Apps.Gatehouse, &a1)
				json.Unmarshal(again, &a2)
				b1, _ := json.Marshal(a1)
				b2, _ := json.Marshal(a2)
				if !bytes.Equal(b1, b2) {
					t.Fatalf("JSON round trip differs:\n%s\n%s", b1, b2)
				}
			}
		})
	}
}

func TestCaddyfileErrors(t *testing.T) {
	wrap := func(body string) string { return "{\n\tgatehouse {\n" + body + "\n\t}\n}\n" }
	cases := []struct{ name, input, want string }{
		{"no issuer", wrap("dev"), "needs an issuer"},
		{"unknown option", wrap("issuer https://a.example\nbogus 1"), `unknown gatehouse option "bogus"`},
		{"issuer two values", wrap("issuer https://a https://b"), "issuer takes exactly one value"},
		{"bad alg", wrap("issuer https://a.example\nsigning_alg HS256"), "RS256 or ES256"},
		{"bad duration", wrap("issuer https://a.example\nsession_idle soon"), "not a positive duration"},
		{"client without secret", wrap("issuer https://a.example\nclient x {\nredirect_uri https://x/cb\n}"), "needs a secret"},
		{"public client with secret", wrap("issuer https://a.example\nclient x {\npublic\nsecret s\nredirect_uri https://x/cb\n}"), "cannot have a secret"},
		{"client without redirect", wrap("issuer https://a.example\nclient x {\nsecret s\n}"), "at least one redirect_uri"},
		{"client twice", wrap("issuer https://a.example\nclient x {\nsecret s\nredirect_uri https://x/cb\n}\nclient x {\nsecret s\nredirect_uri https://x/cb\n}"), "defined twice"},
		{"private key in jwks", wrap("issuer https://a.example\nclient x {\ntoken_endpoint_auth_method private_key_jwt\nredirect_uri https://x/cb\njwks `{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}`\n}"), "not a public key"},
		{"jwks file missing", wrap("issuer https://a.example\nclient x {\ntoken_endpoint_auth_method private_key_jwt\nredirect_uri https://x/cb\njwks /nonexistent/keys.json\n}"), "no such file"},
		{"private_key_jwt without keys", wrap("issuer https://a.example\nclient x {\ntoken_endpoint_auth_method private_key_jwt\nredirect_uri https://x/cb\n}"), "needs jwks or jwks_uri"},
		{"client unknown option", wrap("issuer https://a.example\nclient x {\nsecret s\nredirect_uri https://x/cb\ncolour red\n}"), `unknown option "colour"`},
		{"bad remember", wrap("issuer https://a.example\nchain {\npassword {\nlevels 1\nremember forever\n}\n}"), "none, session or persistent"},
		{"empty chain", wrap("issuer https://a.example\nchain {\n}"), "at least one module"},
		{"unknown kind", wrap("issuer https://a.example\nchain {\nsms {\nlevels 1\n}\n}"), `module sms: unknown kind "sms"`},
		{"unknown setting", wrap("issuer https://a.example\nchain {\npassword {\nlevels 1\n}\ntotp {\nlevels 2\nafter password\ndigits 8\n}\n}"), `module totp: setting digits: kind totp has no setting "digits" (known: issuer, mandatory), at Caddyfile:11`},
		{"setting of another kind", wrap("issuer https://a.example\nchain {\nsecond {\nkind password\nlevels 1\nissuer Acme\n}\n}"), `kind password has no setting "issuer"`},
		{"bad boolean setting", wrap("issuer https://a.example\nchain {\ntotp {\nlevels 2\nmandatory maybe\n}\n}"), `setting mandatory: is true or false, not "maybe", at Caddyfile:7`},
		{"string setting two values", wrap("issuer https://a.example\nchain {\ntotp {\nlevels 2\nissuer Acme Corp\n}\n}"), "setting issuer: takes one value, not 2"},
		{"setting twice", wrap("issuer https://a.example\nchain {\ntotp {\nlevels 2\nissuer A\nissuer B\n}\n}"), "setting issuer is given twice"},
		{"setting with a block", wrap("issuer https://a.example\nchain {\ntotp {\nlevels 2\nissuer {\nname A\n}\n}\n}"), "setting issuer takes no block"},
		{"demo user one arg", wrap("issuer https://a.example\ndemo_user alice"), "username and a password"},
		{"unknown store", wrap("issuer https://a.example\nstore mysql"), `unknown store "mysql"`},
		{"redis without address", wrap("issuer https://a.example\nstore redis"), "needs a URL"},
		{"redis unknown option", wrap("issuer https://a.example\nstore redis redis://x {\ndb 2\n}"), `unknown redis option "db"`},
		{"regulation unknown kind", wrap("issuer https://a.example\nregulation {\nemail {\nmax_retries 3\n}\n}"), `unknown key kind "email"`},
		{"regulation bad number", wrap("issuer https://a.example\nregulation {\nuser {\nmax_retries many\n}\n}"), "whole number"},
		{"regulation free above max", wrap("issuer https://a.example\nregulation {\nuser {\nmax_retries 3\nfree_retries 5\n}\n}"), "must be less than max_retries"},
		{"regulation unknown option", wrap("issuer https://a.example\nregulation {\nip {\nlimit 3\n}\n}"), `unknown option "limit"`},
		{"weak password policy", wrap("issuer https://a.example\npassword_policy {\nmin_length 4\n}"), "too weak"},
		{"password policy strength", wrap("issuer https://a.example\npassword_policy {\nmin_strength 9\n}"), "0 to 4"},
		{"weak hashing", wrap("issuer https://a.example\npassword_hashing {\nmemory 1MiB\n}"), "too weak"},
		{"hashing bad memory", wrap("issuer https://a.example\npassword_hashing {\nmemory lots\n}"), "memory size"},
		{"sessions cap", wrap("issuer https://a.example\nmax_sessions_per_user 0"), "positive number"},
		{"gate unknown option", "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t}\n}\na.example {\n\tgatehouse_gate {\n\t\tlevel 2\n\t}\n}\n", `unknown gatehouse_gate option "level"`},
		{"gate bad allow", "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t}\n}\na.example {\n\tgatehouse_gate {\n\t\tallow role x\n\t}\n}\n", "allow user|group"},
		{"gate client without issuer", "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t}\n}\na.example {\n\tgatehouse_gate {\n\t\tclient_id x\n\t}\n}\n", "go with an external issuer"},
		{"after a typo", wrap("issuer https://a.example\nchain {\npassword {\nlevels 1\n}\ntotp {\nlevels 2\nafter pasword\n}\n}"),
			`module totp: after "pasword": the chain has no module of that name (modules: password, totp), at Caddyfile:10`},
		{"relative redirect uri", wrap("issuer https://a.example\nclient x {\nsecret s\nredirect_uri /cb\n}"), `client x: redirect URI "/cb" must be an absolute URL`},
		{"logout uri with fragment", wrap("issuer https://a.example\nclient x {\nsecret s\nredirect_uri https://x/cb\npost_logout_redirect_uri https://x/#bye\n}"), "must not contain a fragment"},
		{"dev with a public issuer", wrap("issuer https://auth.acme.example\ndev"), "dev (cookies without Secure, plain http) is only for an issuer on localhost, not auth.acme.example"},
		{"gate level unknown", "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t}\n}\na.example {\n\tgatehouse_gate {\n\t\tacr 2\n\t}\n}\n",
			`acr "2" is not a level of the chain (levels: 1): use one of those, or add it to a module's levels, at Caddyfile:8`},
		{"gate without an idp", "a.example {\n\tgatehouse_gate\n}\n", "gatehouse_gate needs an IdP: configure the gatehouse global option"},
		{"branding bad accent", wrap("issuer https://a.example\nbranding {\nname Acme\naccent red\n}"), `branding: accent colour "#red" is not #rgb or #rrggbb, at Caddyfile:6`},
		{"branding unknown option", wrap("issuer https://a.example\nbranding {\ncolour #fff\n}"), `unknown branding option "colour"`},
		{"idp with options", "{\n\tgatehouse {\n\t\tissuer https://a.example\n\t}\n}\na.example {\n\tgatehouse_idp {\n\t\tfoo\n\t}\n}\n", "takes no options"},
	}
	checkAdaptErrors(t, cases)
}

// checkAdaptErrors adapts each input and wants its error, naming a line.
func checkAdaptErrors(t *testing.T, cases []struct{ name, input, want string }) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := adapt(t, tc.input)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "Caddyfile:") {
				t.Fatalf("error %v does not name the line", err)
			}
		})
	}
}

func TestExampleAdapts(t *testing.T) {
	raw, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	out, err := adapt(t, string(raw))
	if err != nil {
		t.Fatalf("Caddyfile.example: %v", err)
	}
	for _, want := range []string{`"handler":"gatehouse_idp"`, `"handler":"gatehouse_gate"`, `"demo_user"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("adapted example lacks %s", want)
		}
	}
}
