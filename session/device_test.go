package session

import (
	"strings"
	"testing"
)

func TestDevice(t *testing.T) {
	for ua, want := range map[string]string{
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36":                                   "Chrome on Linux",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0":           "Edge on Windows",
		"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0":                                                          "Firefox on Linux",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1": "Safari on iPhone",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15":                   "Safari on macOS",
		"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36":                            "Chrome on Android",
		"curl/8.11.0":                     "curl",
		"":                                "an unknown browser",
		"<script>alert(1)</script> Linux": "a browser on Linux",
	} {
		if got := Device(ua); got != want {
			t.Errorf("%q: %q, want %q", ua, got, want)
		}
	}
}

// Whatever the header, the name is made of known words only.
func FuzzDevice(f *testing.F) {
	f.Add("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0 Safari/537.36")
	f.Add("<img src=x>")
	known := "Edge Opera Firefox Chromium Chrome Safari curl Wget Python Go program on Windows Android iPhone iPad ChromeOS macOS Linux FreeBSD a browser an unknown"
	f.Fuzz(func(t *testing.T, ua string) {
		got := Device(ua)
		for _, w := range strings.Fields(got) {
			if !strings.Contains(" "+known+" ", " "+w+" ") {
				t.Fatalf("%q gives %q", ua, got)
			}
		}
	})
}
