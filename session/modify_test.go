package session

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-idp/gatehouse/internal/memstore"
)

// Many writers of one session at once all land (none lost, none
// refused), and a change that changes nothing writes nothing.
func TestModifyUnderContention(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	m, err := NewManager(ctx, st, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := m.New("alice")
	if err := m.Save(ctx, nil, s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Modify(ctx, nil, s.ID, func(s *Session) error { s.AddClient(fmt.Sprint("c", i%16)); return nil })
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := m.Get(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Clients) != 16 {
		t.Fatalf("clients %v", got.Clients)
	}
	// Nothing changes: the record stays as it was.
	before := slices.Clone(got.raw)
	time.Sleep(2 * time.Millisecond)
	if _, err := m.Modify(ctx, nil, s.ID, func(s *Session) error { s.AddClient("c1"); return nil }); err != nil {
		t.Fatal(err)
	}
	again, _ := m.Get(ctx, s.ID)
	if string(again.raw) != string(before) {
		t.Fatal("a change that changes nothing was written")
	}
}
