package oidc

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := Settings{Issuer: "https://idp.example", ClientID: "c"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for want, s := range map[string]Settings{
		"issuer is required":          {ClientID: "c"},
		"must be https":               {Issuer: "http://idp.example", ClientID: "c"},
		"without query":               {Issuer: "https://idp.example?x=1", ClientID: "c"},
		"client_id is required":       {Issuer: "https://idp.example"},
		"accounts is create":          {Issuer: "https://idp.example", ClientID: "c", Accounts: "auto"},
		"is not <remote value>=<lev":  {Issuer: "https://idp.example", ClientID: "c", AcrLevels: []string{"urn:mfa"}},
		"amr_levels: \"=2\"":          {Issuer: "https://idp.example", ClientID: "c", AMRLevels: []string{"=2"}},
		"allowed_domains: \"a@b\"":    {Issuer: "https://idp.example", ClientID: "c", AllowedDomains: []string{"a@b"}},
		"scopes: \"a b\" is no scope": {Issuer: "https://idp.example", ClientID: "c", Scopes: []string{"a b"}},
	} {
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", s, err, want)
		}
	}
	if err := (&Settings{Issuer: "http://127.0.0.1:9000", ClientID: "c"}).Validate(); err != nil {
		t.Fatalf("loopback http: %v", err)
	}
}

func TestLevelMapAndReached(t *testing.T) {
	m, err := parseLevelMap("acr_levels", []string{"urn:x?a=b=2", "mfa=3", "mfa=2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m["urn:x?a=b"], ","); got != "2" {
		t.Fatalf("split at the last '=': %q", got)
	}
	amrs, _ := parseLevelMap("amr_levels", []string{"hwk=3"})
	if got := reached([]string{"1", "2", "3"}, m, amrs, "mfa", []string{"pwd", "hwk"}); strings.Join(got, " ") != "1 3 2" {
		t.Fatalf("reached %v", got)
	}
	if got := reached([]string{"1", "2"}, m, amrs, "unknown", nil); strings.Join(got, " ") != "1" {
		t.Fatalf("reached %v", got)
	}
}

func TestUsernamePrefix(t *testing.T) {
	m := newMapping(Settings{UsernamePrefix: "corp."})
	for raw, want := range map[string]string{
		`{"sub":"1","preferred_username":"admin"}`: "corp.admin",
		`{"sub":"2","email":"root@corp.example"}`:  "corp.root",
		`{"sub":"3"}`: "corp.3",
	} {
		var claims map[string]any
		_ = json.Unmarshal([]byte(raw), &claims)
		if c, err := m.claims("https://i", claims); err != nil || c.PreferredUsername != want {
			t.Errorf("%s: %q %v, want %q", raw, c.PreferredUsername, err, want)
		}
	}
	for _, bad := range []string{"a b", "x@", "waytoolongprefix-x"} {
		if err := (&Settings{Issuer: "https://i.example", ClientID: "c", UsernamePrefix: bad}).Validate(); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

func FuzzLevelMap(f *testing.F) {
	for _, s := range []string{"urn:mfa=2", "=", "a==b", "x= 2", "http://a/b?c=d=hi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, entry string) {
		m, err := parseLevelMap("acr_levels", []string{entry})
		if err != nil {
			return
		}
		for remote, levels := range m {
			if remote == "" || len(levels) != 1 || levels[0] == "" || remote+"="+levels[0] != entry {
				t.Fatalf("%q parsed to %q=%v", entry, remote, levels)
			}
		}
	})
}

func FuzzClaims(f *testing.F) {
	f.Add(`{"sub":"a","email":"a@b","email_verified":true,"groups":["x"]}`)
	f.Add(`{"sub":1}`)
	f.Add(`{"sub":"a","groups":"x","preferred_username":"\u0000"}`)
	m := newMapping(Settings{})
	f.Fuzz(func(t *testing.T, raw string) {
		var claims map[string]any
		if err := jsonUnmarshal([]byte(raw), &claims); err != nil {
			return
		}
		c, err := m.claims("https://idp.example", claims)
		if err != nil {
			return
		}
		if c.Subject == "" || c.Issuer != "https://idp.example" || (c.EmailVerified && !strings.Contains(c.Email, "@")) || len(c.Groups) > maxGroups {
			t.Fatalf("%s mapped to %+v", raw, c)
		}
		for _, s := range []string{c.Subject, c.Email, c.Name, c.PreferredUsername} {
			if len(s) > maxClaimLen || strings.ContainsAny(s, "\x00\r\n") {
				t.Fatalf("%s kept %q", raw, s)
			}
		}
	})
}

var jsonUnmarshal = json.Unmarshal
