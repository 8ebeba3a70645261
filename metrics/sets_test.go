package metrics_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/gatehouse-idp/gatehouse/audit"
	"github.com/gatehouse-idp/gatehouse/internal/memstore"
	"github.com/gatehouse-idp/gatehouse/metrics"
	"github.com/gatehouse-idp/gatehouse/sets"
)

type ecSigner struct{ key *ecdsa.PrivateKey }

func (s ecSigner) SignClaims(typ string, claims any) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: s.key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	return jwt.Signed(sig).Claims(claims).Serialize()
}

// TestSETMetrics: Security Event Tokens are counted by result.
func TestSETMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	log := audit.New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc, err := sets.New(sets.Config{Store: memstore.New(), Issuer: "https://auth.example", Signer: ecSigner{key},
		Receivers: []sets.Receiver{{URL: "https://hr.example/sets"}}, Audit: log})
	if err != nil {
		t.Fatal(err)
	}
	log.Subscribe(svc.Observe)
	if err := m.Watch(metrics.Sources{Audit: log, SETs: svc}); err != nil {
		t.Fatal(err)
	}
	log.Record(context.Background(), audit.Event{Event: audit.LoginSucceeded, Subject: "s", SID: "x"})
	want := `
# HELP gatehouse_set_deliveries_total Security Event Tokens on this instance: queued, delivered, failed (to be retried), given up, and dropped from a full queue.
# TYPE gatehouse_set_deliveries_total counter
gatehouse_set_deliveries_total{result="delivered"} 0
gatehouse_set_deliveries_total{result="dropped"} 0
gatehouse_set_deliveries_total{result="failed"} 0
gatehouse_set_deliveries_total{result="given_up"} 0
gatehouse_set_deliveries_total{result="queued"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gatehouse_set_deliveries_total"); err != nil {
		t.Fatal(err)
	}
}
