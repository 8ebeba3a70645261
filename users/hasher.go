package users

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost settings. They are written into
// every hash, so changing them keeps old hashes verifiable; a login with
// a hash made under other parameters rehashes the password.
type Argon2Params struct {
	// Memory in KiB. Default 19456 (19 MiB), OWASP's recommendation.
	Memory uint32 `json:"memory_kib,omitempty"`
	// Time is the number of passes. Default 2.
	Time uint32 `json:"time,omitempty"`
	// Threads (parallelism). Default 1.
	Threads uint8 `json:"threads,omitempty"`
}

// DefaultArgon2 is OWASP's current recommendation for argon2id:
// m=19 MiB, t=2, p=1.
func DefaultArgon2() Argon2Params { return Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1} }

func (p Argon2Params) withDefaults() Argon2Params {
	d := DefaultArgon2()
	if p.Memory == 0 {
		p.Memory = d.Memory
	}
	if p.Time == 0 {
		p.Time = d.Time
	}
	if p.Threads == 0 {
		p.Threads = d.Threads
	}
	return p
}

// Validate refuses parameters below OWASP's minimums.
func (p Argon2Params) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Memory < 7*1024:
		return errors.New("argon2 memory below 7 MiB is too weak")
	case p.Memory > 1<<20:
		return errors.New("argon2 memory above 1 GiB")
	case p.Time < 1 || p.Time > 20:
		return errors.New("argon2 time must be 1 to 20")
	case p.Memory < 19*1024 && p.Time < 2:
		return errors.New("argon2 with less than 19 MiB needs time of at least 2")
	}
	return nil
}

const (
	argonKeyLen  = 32
	argonSaltLen = 16
)

// ErrBusy: too many passwords are being checked at once; try again in a
// moment. Each check holds its memory (19 MiB by default) while it runs,
// so they are bounded instead of queued without end.
var ErrBusy = errors.New("too many sign-ins at once")

// Hasher hashes and checks passwords with bounded concurrency.
type Hasher struct {
	params Argon2Params
	slots  chan struct{}
	// waiting counts checks waiting for a slot.
	waiting atomic.Int64
	wait    time.Duration
	dummy   string
}

// NewHasher returns a hasher running at most concurrency checks at once
// (0: twice the CPUs) and letting a request wait for a slot at most wait
// (0: 3s) before ErrBusy.
func NewHasher(p Argon2Params, concurrency int, wait time.Duration) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	if concurrency <= 0 {
		concurrency = 2 * runtime.NumCPU()
	}
	if wait <= 0 {
		wait = 3 * time.Second
	}
	h := &Hasher{params: p, slots: make(chan struct{}, concurrency), wait: wait}
	d, err := h.hash("gatehouse-dummy-password")
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

// Concurrency is how many checks may run at once.
func (h *Hasher) Concurrency() int { return cap(h.slots) }

// InUse is how many checks run now.
func (h *Hasher) InUse() int { return len(h.slots) }

// Waiting is how many checks wait for a slot now.
func (h *Hasher) Waiting() int { return int(h.waiting.Load()) }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	default:
	}
	h.waiting.Add(1)
	defer h.waiting.Add(-1)
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns an argon2id hash of password in the PHC string format.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hash(password)
}

func (h *Hasher) hash(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading random salt: %w", err)
	}
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Check reports whether password matches hash, and whether the hash was
// made with other parameters than the current ones (rehash it). An empty
// hash is checked against a dummy one, so an unknown user costs the same.
func (h *Hasher) Check(ctx context.Context, hash, password string) (ok, stale bool, err error) {
	if hash == "" {
		hash = h.dummy
	}
	if err := h.acquire(ctx); err != nil {
		return false, false, err
	}
	defer h.release()
	ok, p, err := checkPHC(hash, password)
	return ok, err == nil && p != h.params, err
}

var errBadHash = errors.New("malformed password hash")

// checkPHC checks password against a PHC argon2id hash and returns the
// hash's parameters.
func checkPHC(hash, password string) (bool, Argon2Params, error) {
	var p Argon2Params
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, p, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, p, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Time == 0 || p.Threads == 0 || p.Memory > 1<<22 || p.Time > 100 {
		return false, p, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, p, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 128 {
		return false, p, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, p, nil
}

// defaultHasher serves the package functions and directories made
// without a hasher.
var defaultHasher = func() *Hasher {
	h, err := NewHasher(DefaultArgon2(), 0, 0)
	if err != nil {
		panic(err)
	}
	return h
}()

// HashPassword hashes with the default parameters.
func HashPassword(password string) (string, error) {
	return defaultHasher.Hash(context.Background(), password)
}

// CheckPassword reports whether password matches the PHC argon2id hash.
func CheckPassword(hash, password string) (bool, error) {
	if hash == "" {
		return false, errBadHash
	}
	ok, _, err := checkPHC(hash, password)
	return ok, err
}
