package caddymodule

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// keyApp is an App with just what the key code needs, on store st.
func keyApp(t *testing.T, st session.Store, now func() time.Time) *App {
	t.Helper()
	a := &App{store: st, logger: zap.NewNop(), now: now, keyMu: new(sync.Mutex), tokens: newTokenCache(10)}
	a.setDefaults()
	if err := a.loadKeys(context.Background()); err != nil {
		t.Fatalf("loadKeys() = %v", err)
	}
	a.minter = &token.Minter{Issuer: a.Token.Issuer, Audience: a.Token.Audience, TTL: time.Duration(a.Token.TTL), Keys: a.keys, Now: now}
	return a
}

func kids(t *testing.T, jwks []byte) map[string]bool {
	t.Helper()
	var doc struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(jwks, &doc); err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, k := range doc.Keys {
		m[k.Kid] = true
	}
	return m
}

func verify(t *testing.T, jwks []byte, jwt string, now time.Time) error {
	t.Helper()
	v, err := engageauth.NewStaticVerifier(jwks, engageauth.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), jwt)
	return err
}

func TestSharedSigningKeyAndRotation(t *testing.T) {
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	mem := session.NewMemory(session.MemoryOptions{})
	t.Cleanup(func() { _ = mem.Close() })

	a, b := keyApp(t, mem, clock), keyApp(t, mem, clock)
	if a.keys.Current().ID != b.keys.Current().ID {
		t.Fatalf("two instances on one store sign with different keys: %s, %s", a.keys.Current().ID, b.keys.Current().ID)
	}
	oldKid := a.keys.Current().ID
	claims := token.Claims{Subject: "u1", Email: "a@contoso.com", Role: "agent", Company: "contoso", Provider: "contoso", SessionID: "s1"}
	oldJWT, _, err := a.minter.Mint(claims)
	if err != nil {
		t.Fatal(err)
	}

	if err := a.RotateKey(context.Background()); err != nil {
		t.Fatalf("RotateKey() = %v", err)
	}
	newKid := a.keys.Current().ID
	if newKid == oldKid {
		t.Fatal("RotateKey() kept the same key")
	}
	// B follows on its next refresh.
	if err := b.refreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b.keys.Current().ID != newKid {
		t.Errorf("after refresh, B signs with %s; want the rotated key %s", b.keys.Current().ID, newKid)
	}
	for name, app := range map[string]*App{"A": a, "B": b} {
		ks := kids(t, app.keys.JWKS())
		if !ks[oldKid] || !ks[newKid] {
			t.Errorf("%s's JWKS = %v; want both the previous and the new key", name, ks)
		}
		if err := verify(t, app.keys.JWKS(), oldJWT, now); err != nil {
			t.Errorf("a token signed before the rotation no longer verifies against %s's JWKS: %v", name, err)
		}
	}

	// Once every token of the previous key has expired, it leaves the JWKS.
	now = now.Add(2*defaultTokenTTL + 2*time.Minute)
	if err := b.refreshKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ks := kids(t, b.keys.JWKS()); ks[oldKid] || !ks[newKid] {
		t.Errorf("after retirement, JWKS = %v; want only %s", ks, newKid)
	}

	// A rotation racing with another instance's adopts the winner's key.
	if err := b.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.RotateKey(context.Background()); err != nil { // A's view is stale: CAS fails, A adopts B's
		t.Fatal(err)
	}
	if a.keys.Current().ID != b.keys.Current().ID {
		t.Errorf("after racing rotations, A signs with %s and B with %s; want one key", a.keys.Current().ID, b.keys.Current().ID)
	}
}

func TestSigningKeyFileCannotRotate(t *testing.T) {
	a := &App{Token: TokenConfig{SigningKeyFile: "/x.pem"}}
	if err := a.RotateKey(context.Background()); err == nil {
		t.Error("RotateKey() with signing_key_file = nil; want an error telling to replace the file")
	}
	bad := &App{Token: TokenConfig{RotateEvery: caddy.Duration(time.Minute)}}
	bad.setDefaults()
	if err := bad.checkDurations(); err == nil {
		t.Error("rotate_every 1m passed validation; want at least 1h")
	}
}

// With the memory store, the signing key is kept in Caddy's storage: a
// restart (a new memory store on the same storage) signs with the same key.
func TestMemoryStorePersistsKeysAcrossRestart(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	open := func() session.Store {
		mem := session.NewMemory(session.MemoryOptions{})
		t.Cleanup(func() { _ = mem.Close() })
		return &persistedMemory{Memory: mem, storage: storage}
	}
	first := keyApp(t, open(), time.Now)
	kid := first.keys.Current().ID
	if _, err := storage.Load(context.Background(), blobStoragePrefix+keysBlob); err != nil {
		t.Fatalf("the key was not written to Caddy storage: %v", err)
	}
	restarted := keyApp(t, open(), time.Now)
	if restarted.keys.Current().ID != kid {
		t.Errorf("after a restart the key is %s; want the persisted %s", restarted.keys.Current().ID, kid)
	}
	if err := restarted.RotateKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	again := keyApp(t, open(), time.Now)
	if again.keys.Current().ID != restarted.keys.Current().ID {
		t.Error("a rotation was not persisted")
	}
}

func TestMemoryStoreCaddyfilePersist(t *testing.T) {
	var m MemoryStore
	if err := m.UnmarshalCaddyfile(caddyfile.NewTestDispenser("memory {\n\tpersist off\n\tmax_entries 10\n}")); err != nil {
		t.Fatal(err)
	}
	if m.Persist == nil || *m.Persist || m.MaxEntries != 10 {
		t.Errorf("parsed %+v", m)
	}
	if err := new(MemoryStore).UnmarshalCaddyfile(caddyfile.NewTestDispenser("memory {\n\tpersist maybe\n}")); err == nil {
		t.Error("persist maybe: want an error")
	}
}
