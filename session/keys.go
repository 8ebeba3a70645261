package session

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gatehouse-idp/gatehouse/store"
)

// cookieKeys are the secrets behind every cookie and CSRF token. They are
// generated once and kept in the store so that all instances, and the same
// instance after a restart or reload, accept each other's cookies.
type cookieKeys struct {
	Hash  []byte `json:"hash"`  // HMAC-SHA256 key for securecookie
	Block []byte `json:"block"` // AES-256 key for securecookie
	CSRF  []byte `json:"csrf"`  // HMAC key for CSRF tokens
}

const keyCookieKeys = "keys:cookie"

func loadOrCreateKeys(ctx context.Context, st store.Store) (cookieKeys, error) {
	var k cookieKeys
	b, err := st.Get(ctx, keyCookieKeys)
	if errors.Is(err, store.ErrNotFound) {
		k = cookieKeys{Hash: random(64), Block: random(32), CSRF: random(32)}
		nb, _ := json.Marshal(k)
		err = st.Create(ctx, keyCookieKeys, nb, 0)
		if errors.Is(err, store.ErrExists) {
			// Another instance won the race: use its keys.
			return loadOrCreateKeys(ctx, st)
		}
		if err != nil {
			return k, fmt.Errorf("saving cookie keys: %w", err)
		}
		return k, nil
	}
	if err != nil {
		return k, fmt.Errorf("loading cookie keys: %w", err)
	}
	if err := json.Unmarshal(b, &k); err != nil || len(k.Hash) != 64 || len(k.Block) != 32 || len(k.CSRF) != 32 {
		return k, fmt.Errorf("cookie keys in the store are corrupt")
	}
	return k, nil
}

func random(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
