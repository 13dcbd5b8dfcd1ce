package engageauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyValid(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	v := mustStatic(t, jwksOf(t, k), Options{Now: newClock(testNow).Now})
	tests := []struct {
		name   string
		claims jwt.MapClaims
	}{
		{"contract", validClaims(testNow)},
		{"audience array", edit(validClaims(testNow), "aud", []string{"other", DefaultAudience})},
		{"expired within leeway", edit(validClaims(testNow), "exp", testNow.Add(-29*time.Second).Unix())},
		{"not before within leeway", edit(validClaims(testNow), "nbf", testNow.Add(29*time.Second).Unix())},
		{"no nbf", edit(validClaims(testNow), "nbf", nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(context.Background(), k.sign(t, tt.claims))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			want := Identity{
				UserID: "user-42", Email: "ada@example.com", Name: "Ada Lovelace",
				GivenName: "Ada", FamilyName: "Lovelace", Role: RoleSupervisor,
				Company: "acme", Provider: "acme-azure", ObjectID: "object-1",
				TenantID: "tenant-1", SessionID: "sess-1",
				IssuedAt:  time.Unix(tt.claims["iat"].(int64), 0),
				ExpiresAt: time.Unix(tt.claims["exp"].(int64), 0),
			}
			if !id.IssuedAt.Equal(want.IssuedAt) || !id.ExpiresAt.Equal(want.ExpiresAt) {
				t.Errorf("Verify() times = %v, %v; want %v, %v", id.IssuedAt, id.ExpiresAt, want.IssuedAt, want.ExpiresAt)
			}
			id.IssuedAt, id.ExpiresAt = want.IssuedAt, want.ExpiresAt
			if *id != want {
				t.Errorf("Verify() = %+v; want %+v", *id, want)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "k1")
	jwks := jwksOf(t, k)
	v := mustStatic(t, jwks, Options{Now: newClock(testNow).Now})
	good := validClaims(testNow)

	// HS256 signed with the public JWK's x coordinate: the classic key
	// confusion attack against verifiers that let the token pick the alg.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good)
	hs.Header["kid"] = k.kid
	hsTok, err := hs.SignedString([]byte(k.jwkMap(t)["x"].(string)))
	if err != nil {
		t.Fatal(err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, good)
	none.Header["kid"] = k.kid
	noneTok, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rs := jwt.NewWithClaims(jwt.SigningMethodRS256, good)
	rs.Header["kid"] = k.kid
	rsTok, err := rs.SignedString(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	es384 := jwt.NewWithClaims(jwt.SigningMethodES384, good)
	es384.Header["kid"] = k.kid
	es384Tok, err := es384.SignedString(p384)
	if err != nil {
		t.Fatal(err)
	}
	// Payload changed after signing: an agent promoting themselves.
	goodTok := k.sign(t, good)
	promoted := strings.Split(k.sign(t, edit(good, "role", RoleAccountHolder)), ".")
	parts := strings.Split(goodTok, ".")
	tampered := parts[0] + "." + promoted[1] + "." + parts[2]

	tests := []struct {
		name  string
		token string
		want  error // in addition to ErrInvalidToken; nil for none
	}{
		{"HS256 with JWK x as secret", hsTok, jwt.ErrTokenSignatureInvalid},
		{"alg none", noneTok, jwt.ErrTokenSignatureInvalid},
		{"RS256", rsTok, jwt.ErrTokenSignatureInvalid},
		{"ES384", es384Tok, jwt.ErrTokenSignatureInvalid},
		{"no kid", k.sign(t, good, "kid", nil), jwt.ErrTokenUnverifiable},
		{"numeric kid", k.sign(t, good, "kid", 1), jwt.ErrTokenUnverifiable},
		{"unknown kid", newTestKey(t, "k2").sign(t, good), jwt.ErrTokenUnverifiable},
		{"other key, same kid", newTestKey(t, "k1").sign(t, good), jwt.ErrTokenSignatureInvalid},
		{"tampered payload", tampered, jwt.ErrTokenSignatureInvalid},
		{"wrong iss", k.sign(t, edit(good, "iss", "evil-sso")), jwt.ErrTokenInvalidIssuer},
		{"no iss", k.sign(t, edit(good, "iss", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"wrong aud", k.sign(t, edit(good, "aud", "user-hook")), jwt.ErrTokenInvalidAudience},
		{"no aud", k.sign(t, edit(good, "aud", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"expired", k.sign(t, edit(good, "exp", testNow.Add(-31*time.Second).Unix())), jwt.ErrTokenExpired},
		{"no exp", k.sign(t, edit(good, "exp", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"exp not a number", k.sign(t, edit(good, "exp", "tomorrow")), jwt.ErrTokenMalformed},
		{"not yet valid", k.sign(t, edit(good, "nbf", testNow.Add(31*time.Second).Unix())), jwt.ErrTokenNotValidYet},
		{"no sub", k.sign(t, edit(good, "sub", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"garbage", "not a token", jwt.ErrTokenMalformed},
		{"three garbage segments", "a.b.c", jwt.ErrTokenMalformed},
		{"signature stripped", parts[0] + "." + parts[1] + ".", jwt.ErrTokenSignatureInvalid},
		{"empty", "", nil},
		{"too long", goodTok + strings.Repeat("A", MaxTokenSize), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, err := v.Verify(context.Background(), tt.token)
			if err == nil {
				t.Fatalf("Verify(%q) = %+v, nil; want error", tt.token, id)
			}
			if id != nil {
				t.Errorf("Verify(%q) returned identity %+v with error", tt.token, id)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("Verify(%q) error = %v; want ErrInvalidToken", tt.token, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Verify(%q) error = %v; want %v", tt.token, err, tt.want)
			}
		})
	}
}

func TestNewVerifierOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       Options
		wantHeader string
		wantErr    string
	}{
		{"defaults", Options{JWKSURL: "http://localhost:8080/sso/.well-known/jwks.json"}, "X-Engage-Identity", ""},
		{"custom header", Options{JWKSURL: "https://sso.example/jwks.json", Header: "x-identity"}, "X-Identity", ""},
		{"no URL", Options{}, "", "not an absolute http or https URL"},
		{"relative URL", Options{JWKSURL: "/sso/.well-known/jwks.json"}, "", "not an absolute http or https URL"},
		{"other scheme", Options{JWKSURL: "file:///etc/jwks.json"}, "", "not an absolute http or https URL"},
		{"unparsable URL", Options{JWKSURL: "http://[::1"}, "", "parsing JWKS URL"},
		{"bad header", Options{JWKSURL: "http://localhost/", Header: "X Engage"}, "", "invalid header name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := NewVerifier(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewVerifier(%+v) error = %v; want it to contain %q", tt.opts, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewVerifier(%+v): %v", tt.opts, err)
			}
			if got := v.Header(); got != tt.wantHeader {
				t.Errorf("NewVerifier(%+v).Header() = %q; want %q", tt.opts, got, tt.wantHeader)
			}
		})
	}
}

func TestParseJWKS(t *testing.T) {
	t.Parallel()
	k1, k2 := newTestKey(t, "k1"), newTestKey(t, "k2")
	with := func(k testKey, kv ...string) map[string]any {
		m := k.jwkMap(t)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(m, kv[i])
			} else {
				m[kv[i]] = kv[i+1]
			}
		}
		return m
	}
	rsaJWK := map[string]any{"kty": "RSA", "kid": "r1", "n": "AQAB", "e": "AQAB"}
	tests := []struct {
		name     string
		doc      []byte
		wantKids []string
		wantErr  string
	}{
		{"two keys", jwksOf(t, k1, k2), []string{"k1", "k2"}, ""},
		{"alg and use optional", jwksOf(t, with(k1, "alg", "", "use", "")), []string{"k1"}, ""},
		{"skips RSA", jwksOf(t, rsaJWK, k1), []string{"k1"}, ""},
		{"skips other alg", jwksOf(t, with(k1, "alg", "ES384"), k2), []string{"k2"}, ""},
		{"skips encryption keys", jwksOf(t, with(k1, "use", "enc"), k2), []string{"k2"}, ""},
		{"skips keys without kid", jwksOf(t, with(k1, "kid", ""), k2), []string{"k2"}, ""},
		{"only unusable keys", jwksOf(t, rsaJWK), nil, "no ES256 signing keys"},
		{"empty", []byte(`{"keys":[]}`), nil, "no ES256 signing keys"},
		{"no keys member", []byte(`{}`), nil, "no ES256 signing keys"},
		{"not JSON", []byte("<html>"), nil, "parsing JWKS"},
		{"duplicate kid", jwksOf(t, k1, with(k2, "kid", "k1")), nil, `duplicate key id "k1"`},
		{"short x", jwksOf(t, with(k1, "x", "AAAA")), nil, "x is 3 bytes; want 32"},
		{"x not base64url", jwksOf(t, with(k1, "x", "!!!")), nil, "decoding x"},
		{"point off curve", jwksOf(t, with(k1, "y", k1.jwkMap(t)["x"].(string))), nil, "invalid P-256 point"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, err := parseJWKS(tt.doc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseJWKS(%s) error = %v; want it to contain %q", tt.doc, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseJWKS(%s): %v", tt.doc, err)
			}
			if len(keys) != len(tt.wantKids) {
				t.Errorf("parseJWKS(%s) has %d keys; want %q", tt.doc, len(keys), tt.wantKids)
			}
			for _, kid := range tt.wantKids {
				if keys[kid] == nil {
					t.Errorf("parseJWKS(%s) lacks key %q", tt.doc, kid)
				}
			}
		})
	}
	// The parsed key is the signing key's public half.
	keys, err := parseJWKS(jwksOf(t, k1))
	if err != nil {
		t.Fatal(err)
	}
	if !keys["k1"].Equal(&k1.priv.PublicKey) {
		t.Error("parseJWKS returned a different public key")
	}
	if _, err := NewStaticVerifier([]byte(`{"keys":[]}`), Options{}); err == nil {
		t.Error("NewStaticVerifier with no keys succeeded; want error")
	}
}

func TestIdentityAtLeast(t *testing.T) {
	t.Parallel()
	tests := []struct {
		role, min string
		want      bool
	}{
		{RoleAgent, RoleAgent, true},
		{RoleAgent, RoleSupervisor, false},
		{RoleSupervisor, RoleAgent, true},
		{RoleSupervisor, RoleAccountHolder, false},
		{RoleAccountHolder, RoleSupervisor, true},
		{"admin", RoleAgent, false},
		{"", RoleAgent, false},
		{RoleAccountHolder, "admin", false},
		{RoleAccountHolder, "", false},
	}
	for _, tt := range tests {
		id := &Identity{Role: tt.role}
		if got := id.AtLeast(tt.min); got != tt.want {
			t.Errorf("Identity{Role: %q}.AtLeast(%q) = %v; want %v", tt.role, tt.min, got, tt.want)
		}
	}
	var nilID *Identity
	if nilID.AtLeast(RoleAgent) {
		t.Error("(*Identity)(nil).AtLeast(agent) = true; want false")
	}
}

func TestContext(t *testing.T) {
	t.Parallel()
	if id, ok := FromContext(context.Background()); ok || id != nil {
		t.Errorf("FromContext(empty) = %v, %v; want nil, false", id, ok)
	}
	if id, ok := FromContext(NewContext(context.Background(), nil)); ok || id != nil {
		t.Errorf("FromContext(nil identity) = %v, %v; want nil, false", id, ok)
	}
	want := &Identity{UserID: "u"}
	if id, ok := FromContext(NewContext(context.Background(), want)); !ok || id != want {
		t.Errorf("FromContext() = %v, %v; want %v, true", id, ok, want)
	}
}
