package provider

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzRegistrationMetadata: the metadata checks never panic, and
// whatever they accept is a client Validate accepts, whose redirect URIs
// are absolute, without fragment, https or loopback http (or a custom
// scheme of a native client), and which is neither first party nor a
// resource server.
func FuzzRegistrationMetadata(f *testing.F) {
	p := fuzzProvider(f)
	// No fuzzed sector_identifier_uri reaches the network.
	p.cfg.HTTPClient = &http.Client{Transport: refuseAll{}}
	for _, s := range []string{
		`{"redirect_uris":["https://app.example/cb"]}`,
		`{"redirect_uris":["http://127.0.0.1:8080/cb"],"token_endpoint_auth_method":"none","application_type":"native"}`,
		`{"redirect_uris":["com.example:/cb"],"application_type":"native","grant_types":["authorization_code","refresh_token"]}`,
		`{"redirect_uris":["https://a.example/cb"],"response_types":["code id_token","id_token token"],"first_party":true}`,
		`{"grant_types":["client_credentials"],"resource_server":true,"scope":"a b"}`,
		`{"redirect_uris":["javascript:alert(1)"]}`,
		`{"redirect_uris":["https://a.example/cb#x"],"subject_type":"pairwise"}`,
		`{"redirect_uris":["HTTP://LOCALHOST/cb"],"logo_uri":"https://a.example/l.png","contacts":["a@b"]}`,
		`{"jwks":{"keys":[]},"jwks_uri":"https://x"}`,
		`[]`, `null`, `{"client_name":7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, _, oerr := parseMetadata(body)
		if oerr != nil {
			if oerr.Code != "invalid_client_metadata" {
				t.Fatalf("parse error code %q", oerr.Code)
			}
			return
		}
		c, oerr := p.registeredClient(context.Background(), m)
		if oerr != nil {
			if oerr.Code != "invalid_client_metadata" && oerr.Code != "invalid_redirect_uri" || oerr.status != 400 {
				t.Fatalf("error %+v", oerr)
			}
			return
		}
		c.ID = "fuzzed"
		if usesSecret(&c) {
			c.SecretHash = make([]byte, 32)
		}
		if err := c.Validate(); err != nil {
			return // refused by Validate: the endpoint answers invalid_client_metadata
		}
		if c.FirstParty || c.ResourceServer {
			t.Fatal("a registration made itself first party or a resource server")
		}
		for _, raw := range slices.Concat(c.RedirectURIs, c.PostLogoutRedirectURIs) {
			u, err := url.Parse(raw)
			if err != nil || !u.IsAbs() || strings.Contains(raw, "#") {
				t.Fatalf("accepted redirect URI %q", raw)
			}
			switch u.Scheme {
			case "https":
			case "http":
				if !isLoopbackHost(u.Hostname()) {
					t.Fatalf("accepted http redirect URI %q", raw)
				}
			case "javascript", "data", "file", "vbscript":
				t.Fatalf("accepted redirect URI %q", raw)
			default:
				if c.ApplicationType != AppNative {
					t.Fatalf("accepted custom scheme %q for a %s client", raw, c.ApplicationType)
				}
			}
		}
	})
}

type refuseAll struct{}

func (refuseAll) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in fuzzing")
}

func TestUnknownRegistrationPolicy(t *testing.T) {
	p := fuzzProvider(t)
	p.cfg.Registration = "sometimes"
	if err := p.setupRegistration(); err == nil || !strings.Contains(err.Error(), "off, open or initial_access_token") {
		t.Fatalf("unknown policy: %v", err)
	}
}
