package engageauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testKey is a signing key with its key ID.
type testKey struct {
	kid  string
	priv *ecdsa.PrivateKey
}

func newTestKey(t testing.TB, kid string) testKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{kid: kid, priv: priv}
}

// jwkMap is the JWK of k's public key as a generic map, so tests can edit it.
func (k testKey) jwkMap(t testing.TB) map[string]any {
	t.Helper()
	raw, err := k.priv.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": k.kid,
		"x": base64.RawURLEncoding.EncodeToString(raw[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(raw[33:]),
	}
}

// jwksOf renders a JWKS document of the given keys or JWK maps.
func jwksOf(t testing.TB, keys ...any) []byte {
	t.Helper()
	list := make([]any, 0, len(keys))
	for _, k := range keys {
		if tk, ok := k.(testKey); ok {
			k = tk.jwkMap(t)
		}
		list = append(list, k)
	}
	doc, err := json.Marshal(map[string]any{"keys": list})
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// validClaims returns the claims of a good identity token issued at now.
func validClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": DefaultIssuer, "aud": DefaultAudience, "sub": "user-42",
		"email": "ada@example.com", "name": "Ada Lovelace", "given_name": "Ada",
		"family_name": "Lovelace", "role": RoleSupervisor, "company": "acme",
		"provider": "acme-azure", "oid": "object-1", "tid": "tenant-1", "sid": "sess-1",
		"iat": now.Unix(), "nbf": now.Add(-5 * time.Second).Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
	}
}

// edit returns a copy of c with the given claims set, or removed when the
// value is nil.
func edit(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		name := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, name)
		} else {
			out[name] = kv[i+1]
		}
	}
	return out
}

// sign returns an ES256 token signed by k, with k's kid unless kid is
// overridden in header.
func (k testKey) sign(t testing.TB, claims jwt.MapClaims, header ...any) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = k.kid
	for i := 0; i < len(header); i += 2 {
		if header[i+1] == nil {
			delete(tok.Header, header[i].(string))
		} else {
			tok.Header[header[i].(string)] = header[i+1]
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// clock is a settable time source safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// jwksServer is an httptest JWKS endpoint that counts fetches and whose
// answer tests can change.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32

	mu     sync.Mutex
	status int
	body   []byte
	gate   chan struct{} // if not nil, requests wait for it to be closed
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		status, body, gate := s.status, s.body, s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		if r.Header.Get("Accept") != "application/json" {
			http.Error(w, "bad accept header", http.StatusNotAcceptable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

func (s *jwksServer) setGate(gate chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = gate
}

func (s *jwksServer) url() string { return s.URL + "/sso/.well-known/jwks.json" }

func (s *jwksServer) wantFetches(t *testing.T, want int32, when string) {
	t.Helper()
	if got := s.fetches.Load(); got != want {
		t.Errorf("%s: JWKS fetched %d times; want %d", when, got, want)
	}
}

func mustVerifier(t *testing.T, opts Options) *Verifier {
	t.Helper()
	v, err := NewVerifier(opts)
	if err != nil {
		t.Fatalf("NewVerifier(%+v): %v", opts, err)
	}
	return v
}

func mustStatic(t *testing.T, jwks []byte, opts Options) *Verifier {
	t.Helper()
	v, err := NewStaticVerifier(jwks, opts)
	if err != nil {
		t.Fatalf("NewStaticVerifier(%s): %v", jwks, err)
	}
	return v
}
