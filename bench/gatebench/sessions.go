package main

import (
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/gatehouse-idp/gatehouse/bench/internal/benchkit"
)

// signIn signs in as the demo user through the gate at start (argon2id
// once) and returns the IdP's cookies (the IdP at idp): the SSO session
// that makes every later gate sign-in silent.
func signIn(start, idp string) []*http.Cookie {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: benchkit.Loopback()}
	resp, err := benchkit.SignIn(c, start, "bench", "bench-password-for-gatebench")
	if err != nil {
		fatal("signing in: %v", err)
	}
	if resp.StatusCode != 200 {
		fatal("signing in ended with %d at %s", resp.StatusCode, resp.Request.URL)
	}
	u, _ := url.Parse(idp)
	idpURLs = []*url.URL{u}
	return jar.Cookies(u)
}

// idpURLs are where the IdP's cookies live.
var idpURLs []*url.URL

// makeSessions signs in n times at the gate of site, each time in a new
// browser that has only the SSO session: each ends with its own gate
// session, whose cookie ("name=value") is returned.
func makeSessions(sso []*http.Cookie, site string, n int) []string {
	out := make([]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed error
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := benchkit.Loopback()
			for i := range next {
				ck, err := gateSession(tr, sso, site)
				if err != nil {
					mu.Lock()
					failed = err
					mu.Unlock()
					continue
				}
				out[i] = ck
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed != nil {
		fatal("making gate sessions at %s: %v", site, failed)
	}
	return out
}

func gateSession(tr http.RoundTripper, sso []*http.Cookie, site string) (string, error) {
	jar, _ := cookiejar.New(nil)
	for _, u := range idpURLs {
		jar.SetCookies(u, sso)
	}
	c := &http.Client{Jar: jar, Transport: tr}
	req, _ := http.NewRequest(http.MethodGet, site, nil)
	req.Header.Set("Accept", "text/html")
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("gate sign-in ended with %d at %s", resp.StatusCode, resp.Request.URL)
	}
	u, _ := url.Parse(site)
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "gatehouse-gate" {
			return ck.Name + "=" + ck.Value, nil
		}
	}
	return "", fmt.Errorf("no gate cookie at %s", site)
}

func writeCookies(path string, cookies []string) {
	if err := os.WriteFile(path, []byte(strings.Join(cookies, "\n")+"\n"), 0o600); err != nil {
		fatal("%v", err)
	}
}
