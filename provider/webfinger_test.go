package provider_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestWebFinger(t *testing.T) {
	e := newEnvWith(t, envSetup{path: "/idp"})
	host := strings.TrimPrefix(strings.TrimPrefix(e.issuer, "http://"), "https://")
	host = strings.TrimSuffix(host, "/idp")
	hostname, _, _ := strings.Cut(host, ":")
	get := func(q url.Values) (*http.Response, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, strings.TrimSuffix(e.issuer, "/idp")+"/.well-known/webfinger?"+q.Encode(), nil)
		return doJSON(t, req)
	}
	rel := "http://openid.net/specs/connect/1.0/issuer"
	for _, res := range []string{"acct:alice@" + hostname, "acct:nobody-at-all@" + host, "https://" + host + "/joe", "mailto:a@" + hostname} {
		resp, out := get(url.Values{"resource": {res}, "rel": {rel}})
		links, _ := out["links"].([]any)
		if resp.StatusCode != 200 || out["subject"] != res || len(links) != 1 || resp.Header.Get("Content-Type") != "application/jrd+json" {
			t.Fatalf("%s: %d %v", res, resp.StatusCode, out)
		}
		if l := links[0].(map[string]any); l["rel"] != rel || l["href"] != e.issuer {
			t.Errorf("%s: link %v", res, l)
		}
	}
	// Another rel: no links.
	if _, out := get(url.Values{"resource": {"acct:alice@" + hostname}, "rel": {"http://webfinger.net/rel/avatar"}}); len(out["links"].([]any)) != 0 {
		t.Errorf("other rel: %v", out)
	}
	for name, q := range map[string]url.Values{
		"no resource":    {},
		"two resources":  {"resource": {"acct:a@" + hostname, "acct:b@" + hostname}},
		"oversized":      {"resource": {"acct:" + strings.Repeat("a", 3000) + "@" + hostname}},
		"another host":   {"resource": {"acct:alice@evil.example"}},
		"no host":        {"resource": {"acct:alice"}},
		"not a resource": {"resource": {"javascript:alert(1)"}},
	} {
		if resp, out := get(q); resp.StatusCode/100 != 4 || out["error"] == nil {
			t.Errorf("%s: %d %v", name, resp.StatusCode, out)
		}
	}
}
