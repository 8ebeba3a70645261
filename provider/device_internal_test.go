package provider

import (
	"strings"
	"testing"
	"time"
)

// FuzzNormalizeUserCode: whatever is typed, the result is either no
// code or exactly 8 letters of the alphabet; the shown form reads back
// as the same code; case, dashes and spaces do not matter; nothing else
// is ignored (no other character, no Unicode case folding to ASCII).
func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"BCDF-GHJK", "bcdfghjk", "bcdf ghjk", " B-C-D-F-G-H-J-K ", "BCDFGHJ", "BCDFGHJKL", "AEIOUAEI",
		"BCDF-GHJ1", "ſCDFGHJK", "BCDF\u2010GHJK", "ＢCDFGHJK", "", "--------", strings.Repeat("B", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeUserCode(s)
		if !ok {
			if n != "" {
				t.Fatalf("%q: refused but returned %q", s, n)
			}
			return
		}
		if len(n) != userCodeLength {
			t.Fatalf("%q -> %q: not %d characters", s, n, userCodeLength)
		}
		for i := 0; i < len(n); i++ {
			if !strings.Contains(userCodeAlphabet, string(n[i])) {
				t.Fatalf("%q -> %q: %q is not in the alphabet", s, n, n[i])
			}
		}
		// Only ASCII letters, dashes, spaces and tabs were in the input.
		for _, r := range s {
			if !strings.ContainsRune(userCodeAlphabet+strings.ToLower(userCodeAlphabet)+"- \t", r) {
				t.Fatalf("%q accepted with %q in it", s, r)
			}
		}
		for _, spelling := range []string{formatUserCode(n), strings.ToLower(n), strings.ToLower(formatUserCode(n)), n[:2] + " " + n[2:]} {
			if m, ok := normalizeUserCode(spelling); !ok || m != n {
				t.Fatalf("%q (shown for %q) reads back as %q %v", spelling, n, m, ok)
			}
		}
	})
}

func TestNewUserCodes(t *testing.T) {
	seen := map[string]bool{}
	counts := map[byte]int{}
	for range 2000 {
		uc := newUserCode()
		n, ok := normalizeUserCode(formatUserCode(uc))
		if !ok || n != uc {
			t.Fatalf("drawn code %q does not read back (%q %v)", uc, n, ok)
		}
		if seen[uc] {
			t.Fatalf("code %q drawn twice in 2000", uc)
		}
		seen[uc] = true
		for i := 0; i < len(uc); i++ {
			counts[uc[i]]++
		}
	}
	// 16000 letters over 20: each near 800; a letter never or hardly
	// drawn means a broken draw.
	for i := 0; i < len(userCodeAlphabet); i++ {
		if c := counts[userCodeAlphabet[i]]; c < 600 || c > 1000 {
			t.Errorf("letter %c drawn %d times of 16000", userCodeAlphabet[i], c)
		}
	}
}

func TestDeviceSettings(t *testing.T) {
	p := testProvider(t, "https://idp.example", "")
	if p.cfg.DeviceCodeTTL != 10*time.Minute || p.cfg.DevicePollInterval != 5*time.Second {
		t.Fatalf("defaults %v %v", p.cfg.DeviceCodeTTL, p.cfg.DevicePollInterval)
	}
	for _, tc := range []struct {
		ttl, interval, want time.Duration
		ok                  bool
	}{
		{time.Minute, 1500 * time.Millisecond, 2 * time.Second, true}, // devices are told whole seconds: at least as long
		{time.Minute, time.Millisecond, time.Second, true},
		{time.Minute, time.Minute, 0, false}, // the device could never poll in time
		{5 * time.Second, 0, 0, false},       // the default 5s interval against a 5s code
	} {
		cfg := p.cfg
		cfg.DeviceCodeTTL, cfg.DevicePollInterval = tc.ttl, tc.interval
		q, err := New(cfg)
		if (err == nil) != tc.ok || err == nil && q.cfg.DevicePollInterval != tc.want {
			t.Errorf("ttl %v interval %v: %v", tc.ttl, tc.interval, err)
		}
	}
}
