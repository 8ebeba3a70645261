// Package logtest is a log destination tests read back: safe for
// concurrent writes, one JSON record (slog's JSON handler) per line.
// Only _test.go files import it.
package logtest

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
)

// Buffer collects what a logger writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Records are the JSON records written so far that keep accepts (nil:
// all), oldest first.
func (l *Buffer) Records(keep func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	for line := range strings.SplitSeq(l.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && (keep == nil || keep(m)) {
			out = append(out, m)
		}
	}
	return out
}
