package session

import "strings"

// Device names the browser and system a User-Agent header describes,
// for people reading their own sessions ("Firefox on Linux"). Only known
// names come out: the header is the client's to write, and none of it
// is echoed.
func Device(ua string) string {
	if len(ua) > 512 {
		ua = ua[:512]
	}
	browser := first(ua, []namePart{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chromium/", "Chromium"},
		{"Chrome/", "Chrome"}, {"CriOS/", "Chrome"}, {"FxiOS/", "Firefox"}, {"Safari/", "Safari"},
		{"curl/", "curl"}, {"Wget/", "Wget"}, {"python-requests/", "Python"}, {"Go-http-client/", "Go program"},
	})
	system := first(ua, []namePart{
		{"Windows", "Windows"}, {"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"},
		{"CrOS", "ChromeOS"}, {"Mac OS X", "macOS"}, {"Macintosh", "macOS"}, {"Linux", "Linux"}, {"FreeBSD", "FreeBSD"},
	})
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "":
		return browser
	case system != "":
		return "a browser on " + system
	}
	return "an unknown browser"
}

type namePart struct{ token, name string }

// first is the name of the first part whose token ua contains.
func first(ua string, parts []namePart) string {
	for _, p := range parts {
		if strings.Contains(ua, p.token) {
			return p.name
		}
	}
	return ""
}
