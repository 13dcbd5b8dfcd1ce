package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
	"github.com/golang-jwt/jwt/v5"
)

func testClaims() Claims {
	return Claims{
		Subject:    "user-42",
		Email:      "ada@example.com",
		Name:       "Ada Lovelace",
		GivenName:  "Ada",
		FamilyName: "Lovelace",
		Role:       RoleSupervisor,
		Company:    "acme",
		Provider:   "acme-azure",
		ObjectID:   "6b1c7f0e-2b7a-4a8c-9d59-0f1e2d3c4b5a",
		TenantID:   "f8cdef31-a31e-4b4a-93e4-5f571e91255a",
		SessionID:  "sess-7f3a",
	}
}

// fixedClock returns a Now func reporting t.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// decodeSegment base64url-decodes and JSON-decodes segment i of token.
func decodeSegment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments; want 3", token, len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatalf("segment %d: %v", i, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("segment %d %s: %v", i, raw, err)
	}
	return m
}

func staticVerifier(t *testing.T, ks *KeySet, opts engageauth.Options) *engageauth.Verifier {
	t.Helper()
	v, err := engageauth.NewStaticVerifier(ks.JWKS(), opts)
	if err != nil {
		t.Fatalf("NewStaticVerifier(%s): %v", ks.JWKS(), err)
	}
	return v
}

func TestMintClaims(t *testing.T) {
	t.Parallel()
	k := mustGenerateKey(t)
	now := testNow.Add(700 * time.Millisecond) // sub-second part is dropped
	tests := []struct {
		name             string
		minter           Minter
		wantIss, wantAud string
		wantTTL          time.Duration
	}{
		{"defaults", Minter{}, "engage-sso", "engage", 5 * time.Minute},
		{"configured", Minter{Issuer: "sso.example", Audience: "crm", TTL: 90 * time.Second}, "sso.example", "crm", 90 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := tt.minter
			m.Keys = NewKeySet(k)
			m.Now = fixedClock(now)
			tok, exp, err := m.Mint(testClaims())
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			wantExp := time.Unix(testNow.Add(tt.wantTTL).Unix(), 0)
			if !exp.Equal(wantExp) {
				t.Errorf("Mint() expires = %v; want %v", exp, wantExp)
			}

			header := decodeSegment(t, tok, 0)
			wantHeader := map[string]any{"alg": "ES256", "kid": k.ID, "typ": "JWT"}
			if !maps.Equal(header, wantHeader) {
				t.Errorf("header = %v; want %v", header, wantHeader)
			}
			if got := kids(jwksKeys(t, m.Keys.JWKS())); len(got) != 1 || got[0] != header["kid"] {
				t.Errorf("JWKS kids = %q; want the token's kid %q", got, header["kid"])
			}

			c := testClaims()
			iat := float64(testNow.Unix())
			want := map[string]any{
				"iss": tt.wantIss, "aud": tt.wantAud, "sub": c.Subject,
				"email": c.Email, "name": c.Name, "given_name": c.GivenName,
				"family_name": c.FamilyName, "role": c.Role, "company": c.Company,
				"provider": c.Provider, "oid": c.ObjectID, "tid": c.TenantID,
				"sid": c.SessionID, "iat": iat, "nbf": iat - 5,
				"exp": iat + tt.wantTTL.Seconds(),
			}
			if got := decodeSegment(t, tok, 1); !maps.Equal(got, want) {
				t.Errorf("claims = %v; want %v", got, want)
			}
		})
	}
}

// TestMintVerifyRoundTrip verifies a minted token with engageauth against
// the JWKS document the KeySet publishes.
func TestMintVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	ks := NewKeySet(mustGenerateKey(t))
	m := &Minter{Keys: ks, Now: fixedClock(testNow)}
	tok, exp, err := m.Mint(testClaims())
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	v := staticVerifier(t, ks, engageauth.Options{Now: fixedClock(testNow.Add(time.Minute))})
	got, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify(Mint()): %v", err)
	}
	c := testClaims()
	want := engageauth.Identity{
		UserID: c.Subject, Email: c.Email, Name: c.Name, GivenName: c.GivenName,
		FamilyName: c.FamilyName, Role: c.Role, Company: c.Company,
		Provider: c.Provider, ObjectID: c.ObjectID, TenantID: c.TenantID,
		SessionID: c.SessionID, IssuedAt: testNow, ExpiresAt: exp,
	}
	if !got.IssuedAt.Equal(want.IssuedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Errorf("Verify() times = %v, %v; want %v, %v", got.IssuedAt, got.ExpiresAt, want.IssuedAt, want.ExpiresAt)
	}
	got.IssuedAt, got.ExpiresAt = want.IssuedAt, want.ExpiresAt
	if *got != want {
		t.Errorf("Verify(Mint()) = %+v; want %+v", *got, want)
	}
}

func TestMintExpiry(t *testing.T) {
	t.Parallel()
	ks := NewKeySet(mustGenerateKey(t))
	m := &Minter{Keys: ks, Now: fixedClock(testNow), TTL: 2 * time.Minute}
	tok, _, err := m.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at      time.Time
		wantErr error
	}{
		{testNow.Add(-NotBeforeSkew - time.Second), jwt.ErrTokenNotValidYet},
		{testNow.Add(-NotBeforeSkew), nil},
		{testNow, nil},
		{testNow.Add(2*time.Minute - time.Second), nil},
		{testNow.Add(2 * time.Minute), jwt.ErrTokenExpired},
		{testNow.Add(time.Hour), jwt.ErrTokenExpired},
	}
	for _, tt := range tests {
		// A negative leeway makes the verifier exact.
		v := staticVerifier(t, ks, engageauth.Options{Now: fixedClock(tt.at), Leeway: -1})
		_, err := v.Verify(context.Background(), tok)
		switch {
		case tt.wantErr == nil && err != nil:
			t.Errorf("Verify at %v: %v; want success", tt.at, err)
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Errorf("Verify at %v: %v; want %v", tt.at, err, tt.wantErr)
		}
	}
}

func TestMintErrors(t *testing.T) {
	t.Parallel()
	ks := NewKeySet(mustGenerateKey(t))
	tests := []struct {
		name   string
		minter Minter
		edit   func(*Claims)
		want   string
	}{
		{"empty subject", Minter{Keys: ks}, func(c *Claims) { c.Subject = "" }, "empty subject"},
		{"empty role", Minter{Keys: ks}, func(c *Claims) { c.Role = "" }, `unknown role ""`},
		{"unknown role", Minter{Keys: ks}, func(c *Claims) { c.Role = "admin" }, `unknown role "admin"`},
		{"negative TTL", Minter{Keys: ks, TTL: -time.Second}, func(*Claims) {}, "negative lifetime"},
		{"no key set", Minter{}, func(*Claims) {}, "no signing key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := testClaims()
			tt.edit(&c)
			tok, _, err := tt.minter.Mint(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Mint() = %q, %v; want error containing %q", tok, err, tt.want)
			}
		})
	}
}

func TestMintAudience(t *testing.T) {
	t.Parallel()
	ks := NewKeySet(mustGenerateKey(t))
	m := &Minter{Keys: ks, Now: fixedClock(testNow)}
	tests := []struct {
		ttl     time.Duration
		wantTTL time.Duration
	}{
		{0, DefaultTTL},
		{30 * time.Second, 30 * time.Second},
	}
	for _, tt := range tests {
		tok, err := m.MintAudience("user-hook", "engage-sso", tt.ttl)
		if err != nil {
			t.Fatalf("MintAudience(ttl %v): %v", tt.ttl, err)
		}
		iat := float64(testNow.Unix())
		want := map[string]any{
			"iss": "engage-sso", "aud": "user-hook", "sub": "engage-sso",
			"iat": iat, "nbf": iat - 5, "exp": iat + tt.wantTTL.Seconds(),
		}
		if got := decodeSegment(t, tok, 1); !maps.Equal(got, want) {
			t.Errorf("MintAudience(ttl %v) claims = %v; want %v", tt.ttl, got, want)
		}
		v := staticVerifier(t, ks, engageauth.Options{Audience: "user-hook", Now: fixedClock(testNow)})
		id, err := v.Verify(context.Background(), tok)
		if err != nil {
			t.Fatalf("Verify(MintAudience()): %v", err)
		}
		if id.UserID != "engage-sso" {
			t.Errorf("Verify(MintAudience()).UserID = %q; want %q", id.UserID, "engage-sso")
		}
		// An identity verifier must refuse it: wrong audience.
		if _, err := staticVerifier(t, ks, engageauth.Options{Now: fixedClock(testNow)}).Verify(context.Background(), tok); !errors.Is(err, jwt.ErrTokenInvalidAudience) {
			t.Errorf("identity verifier accepted a user-hook token: %v", err)
		}
	}

	for _, bad := range []struct{ aud, sub string }{{"", "x"}, {"user-hook", ""}} {
		if tok, err := m.MintAudience(bad.aud, bad.sub, 0); err == nil {
			t.Errorf("MintAudience(%q, %q) = %q; want error", bad.aud, bad.sub, tok)
		}
	}
}

// TestRotationKeepsOldTokensValid mints with two successive keys and checks
// that the JWKS after rotation verifies both tokens until the old key is
// pruned.
func TestRotationKeepsOldTokensValid(t *testing.T) {
	t.Parallel()
	k1, k2 := mustGenerateKey(t), mustGenerateKey(t)
	ks := NewKeySet(k1)
	m := &Minter{Keys: ks, Now: fixedClock(testNow)}
	oldTok, _, err := m.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	retire := testNow.Add(DefaultTTL + time.Minute)
	if err := ks.Rotate(k2, retire); err != nil {
		t.Fatal(err)
	}
	newTok, _, err := m.Mint(testClaims())
	if err != nil {
		t.Fatal(err)
	}
	if got := decodeSegment(t, newTok, 0)["kid"]; got != k2.ID {
		t.Errorf("kid after rotation = %v; want %q", got, k2.ID)
	}

	v := staticVerifier(t, ks, engageauth.Options{Now: fixedClock(testNow)})
	for name, tok := range map[string]string{"old": oldTok, "new": newTok} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("Verify(%s token) after rotation: %v", name, err)
		}
	}

	ks.Prune(retire)
	v = staticVerifier(t, ks, engageauth.Options{Now: fixedClock(testNow)})
	if _, err := v.Verify(context.Background(), oldTok); !errors.Is(err, engageauth.ErrInvalidToken) {
		t.Errorf("Verify(old token) after pruning: %v; want ErrInvalidToken", err)
	}
	if _, err := v.Verify(context.Background(), newTok); err != nil {
		t.Errorf("Verify(new token) after pruning: %v", err)
	}
}

func BenchmarkMint(b *testing.B) {
	m := &Minter{Keys: NewKeySet(mustGenerateKey(b)), Now: fixedClock(testNow)}
	c := testClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := m.Mint(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJWKS(b *testing.B) {
	ks := NewKeySet(mustGenerateKey(b))
	if err := ks.Rotate(mustGenerateKey(b), testNow.Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(ks.JWKS()) == 0 {
			b.Fatal("empty JWKS")
		}
	}
}
