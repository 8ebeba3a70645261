package webauthn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// softKey is an authenticator in software: a P-256 key that answers
// WebAuthn ceremonies as a browser would pass them on (what the
// server sees), for the module's tests. The e2e tests use chromium's
// virtual authenticator instead.
type softKey struct {
	t      testing.TB
	id     []byte
	priv   *ecdsa.PrivateKey
	handle []byte // the user handle it stored at registration
	count  uint32
	rpID   string
	origin string
	synced bool // backup eligible
	noUV   bool // answers without user verification
	aaguid [16]byte
}

func newSoftKey(t testing.TB, rpID, origin string) *softKey {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &softKey{t: t, id: id, priv: priv, rpID: rpID, origin: origin}
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (k *softKey) flags(attested bool) byte {
	f := byte(0x01) // UP
	if !k.noUV {
		f |= 0x04
	}
	if k.synced {
		f |= 0x08 | 0x10
	}
	if attested {
		f |= 0x40
	}
	return f
}

func (k *softKey) clientData(typ, challenge string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": k.origin, "crossOrigin": false})
	return b
}

// create answers creation options (as Begin sent them) with a "none"
// attestation.
func (k *softKey) create(options map[string]any) map[string]any {
	challenge := options["challenge"].(string)
	user := options["user"].(map[string]any)
	h, err := base64.RawURLEncoding.DecodeString(user["id"].(string))
	if err != nil {
		k.t.Fatal(err)
	}
	k.handle = h
	rpHash := sha256.Sum256([]byte(k.rpID))
	cose, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1,
		-2: k.priv.PublicKey.X.FillBytes(make([]byte, 32)), -3: k.priv.PublicKey.Y.FillBytes(make([]byte, 32))})
	if err != nil {
		k.t.Fatal(err)
	}
	ad := append(rpHash[:], k.flags(true))
	ad = binary.BigEndian.AppendUint32(ad, k.count)
	ad = append(ad, k.aaguid[:]...)
	ad = binary.BigEndian.AppendUint16(ad, uint16(len(k.id)))
	ad = append(ad, k.id...)
	ad = append(ad, cose...)
	att, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{"id": enc(k.id), "rawId": enc(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": enc(k.clientData("webauthn.create", challenge)), "attestationObject": enc(att)}}
}

// get answers request options with an assertion, counting up.
func (k *softKey) get(options map[string]any) map[string]any {
	k.count++
	return k.assert(options["challenge"].(string), k.count)
}

// assert signs an assertion over challenge with signature counter n.
func (k *softKey) assert(challenge string, n uint32) map[string]any {
	rpHash := sha256.Sum256([]byte(k.rpID))
	ad := append(rpHash[:], k.flags(false))
	ad = binary.BigEndian.AppendUint32(ad, n)
	cd := k.clientData("webauthn.get", challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, digest[:])
	if err != nil {
		k.t.Fatal(err)
	}
	return map[string]any{"id": enc(k.id), "rawId": enc(k.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": enc(cd), "authenticatorData": enc(ad), "signature": enc(sig), "userHandle": enc(k.handle)}}
}
