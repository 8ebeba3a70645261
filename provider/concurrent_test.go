package provider_test

import (
	"sync"
	"testing"
)

// One browser's SSO session serving many authorizations at once (tabs,
// several gated sites opening together) answers every one with a code.
func TestConcurrentAuthorizationsInOneSession(t *testing.T) {
	e := newEnv(t, "")
	b := e.browser()
	e.login(b, authParams("conf"))
	var wg sync.WaitGroup
	codes := make(chan string, 24)
	for range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, page := b.get(e.authURL(authParams("conf")))
			if resp.StatusCode/100 != 3 {
				t.Errorf("authorization: %d\n%s", resp.StatusCode, page)
				codes <- ""
				return
			}
			codes <- callbackQuery(t, resp, page).Get("code")
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c == "" {
			t.Fatal("an authorization got no code")
		}
	}
}
