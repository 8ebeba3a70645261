package browser

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/gatehouse-idp/gatehouse/store"
)

// keyStoreKey is where the key ring lives. The name predates this package:
// cookies issued before it still verify.
const keyStoreKey = "keys:cookie"

// maxPrevious bounds the replaced key sets that still verify.
const maxPrevious = 3

// keySet is one generation of secrets.
type keySet struct {
	Hash  []byte `json:"hash"`  // HMAC-SHA256 key (securecookie, MACs)
	Block []byte `json:"block"` // AES-256 key (securecookie, sealing)
	CSRF  []byte `json:"csrf"`  // HMAC key of CSRF tokens and Sign
	// Retired is when a previous set stopped being the current one.
	Retired time.Time `json:"retired,omitzero"`
}

// stored is the ring as kept in the store: the current set's fields at
// the top level (the format older versions wrote), older sets below.
type stored struct {
	keySet
	Previous []keySet `json:"previous,omitempty"`
}

func newKeySet() keySet {
	return keySet{Hash: random(64), Block: random(32), CSRF: random(32)}
}

func (k keySet) valid() bool { return len(k.Hash) == 64 && len(k.Block) == 32 && len(k.CSRF) == 32 }

func (k keySet) same(o keySet) bool {
	return bytes.Equal(k.Hash, o.Hash) && bytes.Equal(k.Block, o.Block) && bytes.Equal(k.CSRF, o.CSRF)
}

// ring is the keys in use, ready to use; immutable once built.
type ring struct {
	sets   []keySet // current first
	codecs []securecookie.Codec
	aeads  []cipher.AEAD
	raw    stored
}

func buildRing(s stored) (*ring, error) {
	if !s.keySet.valid() {
		return nil, errors.New("cookie keys in the store are corrupt")
	}
	r := &ring{raw: s}
	for _, k := range append([]keySet{s.keySet}, s.Previous...) {
		if !k.valid() {
			continue
		}
		c := securecookie.New(k.Hash, k.Block)
		c.MaxAge(0) // the server-side record decides how long a value lives
		c.SetSerializer(securecookie.JSONEncoder{})
		mac := hmac.New(sha256.New, k.Block)
		mac.Write([]byte("gatehouse seal v1"))
		block, err := aes.NewCipher(mac.Sum(nil))
		if err != nil {
			return nil, err
		}
		g, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		r.sets = append(r.sets, k)
		r.codecs = append(r.codecs, c)
		r.aeads = append(r.aeads, g)
	}
	return r, nil
}

func decodeStored(b []byte) (stored, error) {
	var s stored
	if err := json.Unmarshal(b, &s); err != nil || !s.keySet.valid() {
		return s, errors.New("cookie keys in the store are corrupt")
	}
	return s, nil
}

// load reads the ring, creating it when the store has none.
func load(ctx context.Context, st store.Store) (*ring, error) {
	for range 3 {
		b, err := st.Get(ctx, keyStoreKey)
		if errors.Is(err, store.ErrNotFound) {
			s := stored{keySet: newKeySet()}
			nb, _ := json.Marshal(s)
			err = st.Create(ctx, keyStoreKey, nb, 0)
			if errors.Is(err, store.ErrExists) {
				continue // another instance won the race: use its keys
			}
			if err != nil {
				return nil, fmt.Errorf("saving cookie keys: %w", err)
			}
			return buildRing(s)
		}
		if err != nil {
			return nil, fmt.Errorf("loading cookie keys: %w", err)
		}
		s, err := decodeStored(b)
		if err != nil {
			return nil, err
		}
		return buildRing(s)
	}
	return nil, errors.New("loading cookie keys: the store keeps changing them")
}

// merge returns the ring the store should hold when it has theirs and
// this instance has ours: theirs stays current, and our sets that it
// lacks are kept as previous ones, so cookies this instance issued keep
// verifying everywhere.
func merge(theirs, ours stored, now time.Time) (stored, bool) {
	out := theirs
	changed := false
	known := append([]keySet{theirs.keySet}, theirs.Previous...)
	for _, k := range append([]keySet{ours.keySet}, ours.Previous...) {
		dup := false
		for _, o := range known {
			if o.same(k) {
				dup = true
				break
			}
		}
		if dup || !k.valid() {
			continue
		}
		if k.Retired.IsZero() {
			k.Retired = now
		}
		out.Previous = append(out.Previous, k)
		known = append(known, k)
		changed = true
	}
	if len(out.Previous) > maxPrevious {
		out.Previous = out.Previous[len(out.Previous)-maxPrevious:]
	}
	return out, changed
}

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return b
}
