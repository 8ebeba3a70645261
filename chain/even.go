package chain

import (
	"context"
	"sync"
	"time"
)

// minMailAnswer is the least time an answer to "mail me a link" takes.
// A real send renders a message and writes it to the store (a disk sync
// on the embedded store); an address no account has costs neither. Both
// answers wait until this much, or the time real sends took lately, has
// passed since the request began, so the time of the answer does not
// tell a known address from an unknown one.
const minMailAnswer = 100 * time.Millisecond

// evener holds back the answers to mail requests so that they take as
// long whether or not a mail went out.
type evener struct {
	mu sync.Mutex
	// slow follows how long the answers that sent a mail took: it rises
	// at once to a slower one and sinks by an eighth of the gap with
	// each faster one.
	slow time.Duration
}

// wait returns once the answer to a request begun at start may go: at
// start plus the longer of minMailAnswer and what real sends take now.
// sent says a mail went out. Real time, not the engine's clock: this is
// about how long the work took.
func (v *evener) wait(ctx context.Context, start time.Time, sent bool) {
	took := time.Since(start)
	v.mu.Lock()
	if sent {
		if took > v.slow {
			v.slow = took
		} else {
			v.slow -= (v.slow - took) / 8
		}
	}
	target := max(v.slow, minMailAnswer)
	v.mu.Unlock()
	if took >= target {
		return
	}
	t := time.NewTimer(target - took)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
