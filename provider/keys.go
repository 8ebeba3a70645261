package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/gatehouse-idp/gatehouse/store"
)

// Signing algorithms Gatehouse can use.
const (
	RS256 = "RS256"
	ES256 = "ES256"
)

const keySigning = "keys:signing"

// storedKey is one signing key as kept in the store.
type storedKey struct {
	JWK     json.RawMessage `json:"jwk"` // private JWK
	Created time.Time       `json:"created"`
	// RetireAt: after this the public key leaves the JWKS. Zero while the
	// key is active.
	RetireAt time.Time `json:"retire_at,omitzero"`
}

type keyRing struct {
	Active string      `json:"active"` // kid
	Keys   []storedKey `json:"keys"`
}

// Keys holds the provider's signing keys. They are generated on first
// start and kept in the store; Rotate makes a new key active and keeps the
// old public key published until tokens signed with it have expired.
type Keys struct {
	st       store.Store
	alg      string
	overlap  time.Duration
	now      func() time.Time
	mu       sync.RWMutex
	active   jose.JSONWebKey
	public   jose.JSONWebKeySet
	loadedAt time.Time
	raw      []byte // the ring as last read from the store
}

// NewKeys loads the key ring from st, creating a first key of algorithm alg
// when there is none. overlap is how long a rotated-out key stays in the
// JWKS (at least the longest token lifetime).
func NewKeys(ctx context.Context, st store.Store, alg string, overlap time.Duration, now func() time.Time) (*Keys, error) {
	if alg == "" {
		alg = RS256
	}
	if alg != RS256 && alg != ES256 {
		return nil, fmt.Errorf("signing algorithm must be RS256 or ES256, not %q", alg)
	}
	if now == nil {
		now = time.Now
	}
	k := &Keys{st: st, alg: alg, overlap: overlap, now: now}
	err := st.Update(ctx, keySigning, 0, func(old []byte) ([]byte, error) {
		if old != nil {
			return old, nil
		}
		sk, err := generateKey(alg, now())
		if err != nil {
			return nil, err
		}
		return json.Marshal(keyRing{Active: kidOf(sk), Keys: []storedKey{sk}})
	})
	if err != nil {
		return nil, fmt.Errorf("loading signing keys: %w", err)
	}
	return k, k.Reload(ctx)
}

func kidOf(sk storedKey) string {
	var j struct {
		Kid string `json:"kid"`
	}
	_ = json.Unmarshal(sk.JWK, &j)
	return j.Kid
}

func generateKey(alg string, now time.Time) (storedKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return storedKey{}, fmt.Errorf("unknown signing algorithm %q", alg)
	}
	if err != nil {
		return storedKey{}, fmt.Errorf("generating %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: priv, Algorithm: alg, Use: "sig"}
	pub := jwk.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return storedKey{}, err
	}
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(tp)[:16]
	b, err := jwk.MarshalJSON()
	if err != nil {
		return storedKey{}, err
	}
	return storedKey{JWK: b, Created: now}, nil
}

// Reload reads the key ring from the store (after a rotation elsewhere).
func (k *Keys) Reload(ctx context.Context) error {
	b, err := k.st.Get(ctx, keySigning)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	var ring keyRing
	if err := json.Unmarshal(b, &ring); err != nil {
		return fmt.Errorf("decoding signing keys: %w", err)
	}
	now := k.now()
	var active jose.JSONWebKey
	var set jose.JSONWebKeySet
	for _, sk := range ring.Keys {
		if !sk.RetireAt.IsZero() && now.After(sk.RetireAt) {
			continue
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(sk.JWK); err != nil {
			return fmt.Errorf("decoding signing key: %w", err)
		}
		if jwk.KeyID == ring.Active {
			active = jwk
		}
		set.Keys = append(set.Keys, jwk.Public())
	}
	if active.Key == nil {
		return errors.New("the active signing key is missing from the store")
	}
	k.mu.Lock()
	k.active, k.public, k.loadedAt, k.raw = active, set, now, b
	k.mu.Unlock()
	return nil
}

// Sync brings this instance in step with the store: a rotation by
// another instance is loaded, and a ring the store lost (Redis flushed)
// is written back, so tokens this instance signed keep verifying and
// every instance signs with the same key again.
func (k *Keys) Sync(ctx context.Context) error {
	_, err := k.st.Get(ctx, keySigning)
	if errors.Is(err, store.ErrNotFound) {
		k.mu.RLock()
		raw := k.raw
		k.mu.RUnlock()
		if err := k.st.Create(ctx, keySigning, raw, 0); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("restoring signing keys: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	return k.Reload(ctx)
}

// Rotate generates a new active key. The previous keys stay in the JWKS
// for the overlap time, then are dropped.
func (k *Keys) Rotate(ctx context.Context) (kid string, err error) {
	now := k.now()
	sk, err := generateKey(k.alg, now)
	if err != nil {
		return "", err
	}
	err = k.st.Update(ctx, keySigning, 0, func(old []byte) ([]byte, error) {
		var ring keyRing
		if old != nil {
			if err := json.Unmarshal(old, &ring); err != nil {
				return nil, fmt.Errorf("decoding signing keys: %w", err)
			}
		}
		var kept []storedKey
		for _, o := range ring.Keys {
			if o.RetireAt.IsZero() {
				o.RetireAt = now.Add(k.overlap)
			}
			if now.Before(o.RetireAt) {
				kept = append(kept, o)
			}
		}
		ring.Keys = append(kept, sk)
		ring.Active = kidOf(sk)
		return json.Marshal(ring)
	})
	if err != nil {
		return "", fmt.Errorf("rotating signing keys: %w", err)
	}
	return kidOf(sk), k.Reload(ctx)
}

// maybeReload refreshes the ring once a minute, so rotations by another
// instance and retirements take effect.
func (k *Keys) maybeReload(ctx context.Context) {
	k.mu.RLock()
	stale := k.now().Sub(k.loadedAt) > time.Minute
	k.mu.RUnlock()
	if stale {
		_ = k.Reload(ctx)
	}
}

// Signer returns a signer for the active key.
func (k *Keys) Signer(typ string) (jose.Signer, error) {
	k.mu.RLock()
	active := k.active
	k.mu.RUnlock()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(active.Algorithm), Key: active}, opts)
}

// Alg is the algorithm of the active key.
func (k *Keys) Alg() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.active.Algorithm
}

// JWKS returns the published public keys.
func (k *Keys) JWKS() jose.JSONWebKeySet {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.public
}

// SignClaims signs claims as a compact JWT of type typ with the active key.
func (k *Keys) SignClaims(typ string, claims any) (string, error) {
	s, err := k.Signer(typ)
	if err != nil {
		return "", err
	}
	return jwt.Signed(s).Claims(claims).Serialize()
}
