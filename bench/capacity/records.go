package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/gatehouse-idp/gatehouse/gate"
	"github.com/gatehouse-idp/gatehouse/session"
)

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func subject() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// newSSO saves an SSO session as a sign-in with a password and TOTP at
// one application leaves it.
func newSSO(ctx context.Context, sm *session.Manager) string {
	s := sm.New(subject())
	now := time.Now()
	s.Pass(session.Passed{Module: "password", Kind: "password", Levels: []string{"1"}, AMR: []string{"pwd"}, At: now})
	s.Pass(session.Passed{Module: "totp", Kind: "totp", Levels: []string{"2"}, AMR: []string{"otp"}, At: now})
	s.AddClient("gatehouse-gates")
	s.Device, s.IP = "Firefox on Linux", "203.0.113.9"
	if err := sm.Save(ctx, nil, s); err != nil {
		log.Fatal(err)
	}
	return s.ID
}

// idToken is an RS256 ID token's size: the gate keeps the one it got,
// as the hint of its logout.
var idToken = strings.Repeat("x", 860)

// newGate saves a gate session of one of the SSO sessions, as a gate
// leaves it after its sign-in.
func newGate(ctx context.Context, gs gate.Sessions, sso []string) string {
	s := &gate.Session{ID: random(32), SID: sso[mrand.IntN(len(sso))], Origin: "https://app.example.com", Subject: subject(),
		Username: "user" + strconv.Itoa(mrand.IntN(1_000_000)), Email: "someone@example.com", Name: "Some One",
		Groups: []string{"staff"}, ACR: "2", Expires: time.Now().Add(12 * time.Hour), IDToken: idToken}
	if err := gs.Save(ctx, s); err != nil {
		log.Fatal(err)
	}
	return s.ID
}

// probe reads 2,000 random ids and returns the p50 and p99 latency.
func probe(read func(id string) error, ids []string) (time.Duration, time.Duration) {
	var ds []time.Duration
	for range 2000 {
		id := ids[mrand.IntN(len(ids))]
		start := time.Now()
		if err := read(id); err != nil {
			log.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2].Round(time.Microsecond), ds[len(ds)*99/100].Round(time.Microsecond)
}

func usedMemory(ctx context.Context, c *goredis.Client) int64 {
	info, err := c.Info(ctx, "memory").Result()
	if err != nil {
		log.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	log.Fatal("no used_memory in INFO memory")
	return 0
}

func redisVersion(ctx context.Context, c *goredis.Client) string {
	info, _ := c.Info(ctx, "server").Result()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "redis_version:"); ok {
			return "redis " + v
		}
	}
	return "redis"
}
