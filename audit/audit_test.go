package audit

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestSubscribe: a subscriber gets every event after its line is
// written, with the request's address filled in; a nil Log takes a
// subscriber without failing.
func TestSubscribe(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	var got []Event
	l.Subscribe(func(_ context.Context, e Event) {
		if !strings.Contains(buf.String(), `"event":"`+e.Event+`"`) {
			t.Errorf("subscriber called before the line of %s was written", e.Event)
		}
		got = append(got, e)
	})
	ctx := WithIP(context.Background(), "192.0.2.7")
	l.Record(ctx, Event{Event: LoginSucceeded, Subject: "s"})
	l.Record(ctx, Event{Event: SETGivenUp, Target: "https://r.example"})
	if len(got) != 2 || got[0].IP != "192.0.2.7" || got[1].Event != SETGivenUp {
		t.Fatalf("subscriber got %+v", got)
	}
	if !strings.Contains(buf.String(), `"level":"WARN","msg":"gatehouse security event","event":"set_delivery_given_up"`) {
		t.Fatalf("a given-up SET is not a warning: %s", buf.String())
	}
	var none *Log
	none.Subscribe(func(context.Context, Event) { t.Error("called") })
	none.Record(ctx, Event{Event: LoginSucceeded})
}
