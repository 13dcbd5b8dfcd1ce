package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// jwksKeys decodes a JWKS document.
func jwksKeys(t *testing.T, doc []byte) []jwk {
	t.Helper()
	var d struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatalf("JWKS %s: %v", doc, err)
	}
	if d.Keys == nil {
		t.Fatalf("JWKS %s has no keys array", doc)
	}
	return d.Keys
}

func kids(keys []jwk) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.Kid
	}
	return ids
}

func TestKeySetJWKS(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	ks := NewKeySet(k)
	if ks.Current() != k {
		t.Errorf("Current() = %v; want the key passed to NewKeySet", ks.Current())
	}
	keys := jwksKeys(t, ks.JWKS())
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys; want 1: %s", len(keys), ks.JWKS())
	}
	got := keys[0]
	raw, err := k.Private.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	want := jwk{
		Kty: "EC", Crv: "P-256",
		X:   base64.RawURLEncoding.EncodeToString(raw[1:33]),
		Y:   base64.RawURLEncoding.EncodeToString(raw[33:]),
		Kid: k.ID, Alg: "ES256", Use: "sig",
	}
	if got != want {
		t.Errorf("JWKS key = %+v; want %+v", got, want)
	}

	// The document is cached: the same bytes until the keys change.
	a, b := ks.JWKS(), ks.JWKS()
	if &a[0] != &b[0] {
		t.Error("JWKS() rendered the document twice without a key change")
	}
}

func TestKeySetRotation(t *testing.T) {
	t.Parallel()
	k1, k2, k3 := mustGenerateKey(t), mustGenerateKey(t), mustGenerateKey(t)
	ks := NewKeySet(k1)
	before := ks.JWKS()

	retire1 := testNow.Add(10 * time.Minute)
	if err := ks.Rotate(k2, retire1); err != nil {
		t.Fatalf("Rotate(k2): %v", err)
	}
	if ks.Current() != k2 {
		t.Errorf("Current() after Rotate(k2) = %q; want %q", ks.Current().ID, k2.ID)
	}
	after := ks.JWKS()
	if &before[0] == &after[0] {
		t.Error("JWKS() not recomputed after Rotate")
	}
	if got, want := kids(jwksKeys(t, after)), []string{k2.ID, k1.ID}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids after Rotate(k2) = %q; want %q", got, want)
	}

	// Rotating to the current key changes nothing.
	if err := ks.Rotate(k2, retire1.Add(time.Hour)); err != nil {
		t.Fatalf("Rotate(k2) again: %v", err)
	}
	if again := ks.JWKS(); &again[0] != &after[0] {
		t.Error("Rotate to the current key re-rendered the JWKS")
	}

	retire2 := testNow.Add(20 * time.Minute)
	if err := ks.Rotate(k3, retire2); err != nil {
		t.Fatalf("Rotate(k3): %v", err)
	}
	if got, want := kids(jwksKeys(t, ks.JWKS())), []string{k3.ID, k2.ID, k1.ID}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids after Rotate(k3) = %q; want %q", got, want)
	}

	tests := []struct {
		now         time.Time
		wantRemoved int
		wantKids    []string
	}{
		{retire1.Add(-time.Second), 0, []string{k3.ID, k2.ID, k1.ID}},
		{retire1, 1, []string{k3.ID, k2.ID}},
		{retire1.Add(time.Second), 0, []string{k3.ID, k2.ID}},
		{retire2.Add(time.Second), 1, []string{k3.ID}},
	}
	for _, tt := range tests {
		if got := ks.Prune(tt.now); got != tt.wantRemoved {
			t.Errorf("Prune(%v) = %d; want %d", tt.now, got, tt.wantRemoved)
		}
		if got := kids(jwksKeys(t, ks.JWKS())); !slices.Equal(got, tt.wantKids) {
			t.Errorf("JWKS kids after Prune(%v) = %q; want %q", tt.now, got, tt.wantKids)
		}
	}
}

func TestKeySetRotateBackToRetiredKey(t *testing.T) {
	t.Parallel()
	k1, k2 := mustGenerateKey(t), mustGenerateKey(t)
	ks := NewKeySet(k1)
	until := testNow.Add(time.Hour)
	if err := ks.Rotate(k2, until); err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(k1, until); err != nil {
		t.Fatal(err)
	}
	if got, want := kids(jwksKeys(t, ks.JWKS())), []string{k1.ID, k2.ID}; !slices.Equal(got, want) {
		t.Errorf("JWKS kids = %q; want %q (no duplicates)", got, want)
	}
}

func TestKeySetInvalidKeys(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  *Key
	}{
		{"nil", nil},
		{"no private key", &Key{ID: "x"}},
		{"P-384", &Key{ID: "x", Private: p384}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ks := NewKeySet(tt.key)
			if ks.Current() != nil {
				t.Errorf("NewKeySet(%s).Current() = %v; want nil", tt.name, ks.Current())
			}
			if got := string(ks.JWKS()); got != `{"keys":[]}` {
				t.Errorf("NewKeySet(%s).JWKS() = %s; want no keys", tt.name, got)
			}
			m := &Minter{Keys: ks}
			if _, _, err := m.Mint(testClaims()); !errors.Is(err, ErrNoSigningKey) {
				t.Errorf("Mint with NewKeySet(%s) error = %v; want ErrNoSigningKey", tt.name, err)
			}
			if err := NewKeySet(mustGenerateKey(t)).Rotate(tt.key, testNow); err == nil {
				t.Errorf("Rotate(%s) succeeded; want error", tt.name)
			}
		})
	}

	// A key set with no key becomes usable after Rotate.
	ks := NewKeySet(nil)
	k := mustGenerateKey(t)
	if err := ks.Rotate(k, testNow); err != nil {
		t.Fatalf("Rotate on empty set: %v", err)
	}
	if got := kids(jwksKeys(t, ks.JWKS())); !slices.Equal(got, []string{k.ID}) {
		t.Errorf("JWKS kids = %q; want %q", got, []string{k.ID})
	}
}

func TestKeySetFillsMissingID(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	bare := &Key{Private: k.Private}
	ks := NewKeySet(bare)
	if got := ks.Current().ID; got != k.ID {
		t.Errorf("Current().ID = %q; want thumbprint %q", got, k.ID)
	}
	if bare.ID != "" {
		t.Errorf("NewKeySet modified its argument: ID = %q", bare.ID)
	}
}

// TestKeySetConcurrent exercises readers and writers together for the race
// detector.
func TestKeySetConcurrent(t *testing.T) {
	t.Parallel()
	keys := []*Key{mustGenerateKey(t), mustGenerateKey(t), mustGenerateKey(t)}
	ks := NewKeySet(keys[0])
	m := &Minter{Keys: ks, Now: func() time.Time { return testNow }}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, _, err := m.Mint(testClaims()); err != nil {
					t.Errorf("Mint: %v", err)
					return
				}
				if len(ks.JWKS()) == 0 {
					t.Error("empty JWKS")
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			if err := ks.Rotate(keys[i%len(keys)], testNow.Add(time.Duration(i)*time.Second)); err != nil {
				t.Errorf("Rotate: %v", err)
				return
			}
			ks.Prune(testNow.Add(time.Duration(i-5) * time.Second))
		}
	})
	wg.Wait()
}
