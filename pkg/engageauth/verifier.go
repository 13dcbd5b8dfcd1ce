package engageauth

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults and limits.
const (
	// DefaultIssuer is the issuer engage-sso puts in its tokens.
	DefaultIssuer = "engage-sso"
	// DefaultAudience is the audience of identity tokens.
	DefaultAudience = "engage"
	// DefaultHeader is the request header carrying the identity token.
	DefaultHeader = "X-Engage-Identity"
	// DefaultLeeway is the clock skew allowed when checking exp and nbf.
	DefaultLeeway = 30 * time.Second
	// DefaultHTTPTimeout is the timeout of the default JWKS HTTP client.
	DefaultHTTPTimeout = 10 * time.Second

	// RefreshInterval is the shortest time between two JWKS fetches after a
	// successful one: a token naming an unknown key causes at most one fetch
	// per interval, however many such tokens arrive.
	RefreshInterval = 30 * time.Second
	// RetryInterval is the shortest time between two JWKS fetches after a
	// failed one.
	RetryInterval = 5 * time.Second
	// MaxKeyAge is how long fetched keys are used before they are fetched
	// again, so that keys removed from the JWKS stop being trusted. If that
	// fetch fails the old keys stay in use.
	MaxKeyAge = time.Hour
	// MaxJWKSSize is the largest JWKS document accepted, in bytes.
	MaxJWKSSize = 1 << 20
	// MaxTokenSize is the longest token accepted, in bytes.
	MaxTokenSize = 8 << 10
)

var (
	// ErrInvalidToken is wrapped by every error Verify returns for a token
	// that is malformed, badly signed, signed by an unknown key, expired or
	// otherwise unacceptable.
	ErrInvalidToken = errors.New("engageauth: invalid identity token")

	// ErrKeysUnavailable is wrapped by the errors Verify returns when the
	// signing keys could not be fetched, so the token could not be checked.
	// That is a fault of the deployment, not of the token.
	ErrKeysUnavailable = errors.New("engageauth: signing keys unavailable")
)

// errThrottled is returned by refresh when the last fetch was too recent.
var errThrottled = errors.New("engageauth: JWKS fetched recently")

// Options configure a Verifier. Zero values take the documented defaults.
type Options struct {
	// JWKSURL is the absolute http or https URL of engage-sso's JWKS, e.g.
	// http://localhost:8080/sso/.well-known/jwks.json. Required by
	// NewVerifier; ignored by NewStaticVerifier.
	JWKSURL string

	// Issuer is the required "iss" claim. Default: DefaultIssuer.
	Issuer string

	// Audience is the required "aud" claim. Default: DefaultAudience.
	Audience string

	// Header is the request header the middleware reads the token from.
	// Default: DefaultHeader.
	Header string

	// HTTPClient fetches the JWKS. Default: a client with a timeout of
	// DefaultHTTPTimeout.
	HTTPClient *http.Client

	// Leeway is the clock skew allowed when checking exp and nbf.
	// Default: DefaultLeeway; a negative value allows none.
	Leeway time.Duration

	// Now returns the current time. Default: time.Now.
	Now func() time.Time

	// Logger, if not nil, receives one record for every request the
	// middleware rejects, with the reason. Tokens are never logged.
	Logger *slog.Logger
}

// Verifier verifies identity tokens. It is safe for concurrent use.
type Verifier struct {
	opts   Options // with defaults applied
	parser *jwt.Parser
	static bool

	keys atomic.Pointer[keyCache]

	mu          sync.Mutex // guards the fields below
	inflight    *fetchCall
	lastAttempt time.Time
	lastFailed  bool
}

// keyCache is an immutable snapshot of the known public keys.
type keyCache struct {
	keys    map[string]*ecdsa.PublicKey
	fetched time.Time
}

// fetchCall is one JWKS fetch that concurrent callers wait for together.
type fetchCall struct {
	done chan struct{}
	err  error // set before done is closed
}

// NewVerifier returns a Verifier that fetches keys from opts.JWKSURL. Nothing
// is fetched until the first token is verified.
func NewVerifier(opts Options) (*Verifier, error) {
	u, err := url.Parse(opts.JWKSURL)
	if err != nil {
		return nil, fmt.Errorf("engageauth: parsing JWKS URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("engageauth: JWKS URL %q is not an absolute http or https URL", opts.JWKSURL)
	}
	return newVerifier(opts, false)
}

// NewStaticVerifier returns a Verifier that trusts exactly the ES256 keys of
// the JWKS document jwks and never fetches. It suits tests and deployments
// that pin keys.
func NewStaticVerifier(jwks []byte, opts Options) (*Verifier, error) {
	keys, err := parseJWKS(jwks)
	if err != nil {
		return nil, err
	}
	v, err := newVerifier(opts, true)
	if err != nil {
		return nil, err
	}
	v.keys.Store(&keyCache{keys: keys})
	return v, nil
}

func newVerifier(opts Options, static bool) (*Verifier, error) {
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	if opts.Header == "" {
		opts.Header = DefaultHeader
	}
	if !validHeaderName(opts.Header) {
		return nil, fmt.Errorf("engageauth: invalid header name %q", opts.Header)
	}
	opts.Header = http.CanonicalHeaderKey(opts.Header)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	switch {
	case opts.Leeway == 0:
		opts.Leeway = DefaultLeeway
	case opts.Leeway < 0:
		opts.Leeway = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, static: static}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithAudience(opts.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(opts.Now),
	)
	return v, nil
}

// Header returns the canonical name of the request header that carries the
// identity token.
func (v *Verifier) Header() string { return v.opts.Header }

// Verify checks token and returns the identity it carries.
//
// The token must be an ES256 JWT whose "kid" header names a known key, with
// the configured issuer and audience, a subject, and an expiry not yet
// passed. Errors wrap ErrInvalidToken, or ErrKeysUnavailable when the keys
// could not be fetched. ctx bounds the wait for a JWKS fetch.
func (v *Verifier) Verify(ctx context.Context, token string) (*Identity, error) {
	switch {
	case token == "":
		return nil, fmt.Errorf("%w: empty token", ErrInvalidToken)
	case len(token) > MaxTokenSize:
		return nil, fmt.Errorf("%w: token longer than %d bytes", ErrInvalidToken, MaxTokenSize)
	}
	var c tokenClaims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if t.Method != jwt.SigningMethodES256 {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		kid, _ := t.Header["kid"].(string)
		if kid == "" {
			return nil, errors.New("token has no key id")
		}
		return v.key(ctx, kid)
	})
	if err != nil {
		if errors.Is(err, ErrKeysUnavailable) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c.identity(), nil
}

// key returns the public key named kid, fetching the JWKS if the key is
// unknown or the cache is old.
func (v *Verifier) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	c := v.keys.Load()
	if c != nil {
		if k, ok := c.keys[kid]; ok && (v.static || v.opts.Now().Sub(c.fetched) < MaxKeyAge) {
			return k, nil
		}
	}
	if v.static {
		return nil, fmt.Errorf("unknown key id %q", kid)
	}
	err := v.refresh(ctx)
	// After a failed or throttled fetch, a key from an old cache still counts.
	if c = v.keys.Load(); c != nil {
		if k, ok := c.keys[kid]; ok {
			return k, nil
		}
	}
	switch {
	case err != nil && !errors.Is(err, errThrottled):
		return nil, err
	case c == nil:
		return nil, fmt.Errorf("%w: no JWKS fetched yet", ErrKeysUnavailable)
	}
	return nil, fmt.Errorf("unknown key id %q", kid)
}

// refresh fetches the JWKS unless a fetch is under way, in which case it
// waits for that one, or the last fetch was too recent, in which case it
// returns errThrottled. The fetch itself is not cancelled when ctx is: other
// callers may be waiting for it.
func (v *Verifier) refresh(ctx context.Context) error {
	v.mu.Lock()
	call := v.inflight
	if call == nil {
		now := v.opts.Now()
		interval := RefreshInterval
		if v.lastFailed {
			interval = RetryInterval
		}
		if !v.lastAttempt.IsZero() && now.Sub(v.lastAttempt) < interval {
			v.mu.Unlock()
			return errThrottled
		}
		v.lastAttempt = now
		call = &fetchCall{done: make(chan struct{})}
		v.inflight = call
		go v.runFetch(context.WithoutCancel(ctx), call)
	}
	v.mu.Unlock()

	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for JWKS: %w", ErrKeysUnavailable, ctx.Err())
	}
}

// runFetch performs call, stores the keys on success and wakes the waiters.
func (v *Verifier) runFetch(ctx context.Context, call *fetchCall) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	keys, err := v.fetch(ctx)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrKeysUnavailable, err)
	} else {
		v.keys.Store(&keyCache{keys: keys, fetched: v.opts.Now()})
	}
	v.mu.Lock()
	v.inflight = nil
	v.lastFailed = err != nil
	v.mu.Unlock()
	call.err = err
	close(call.done)
}

// tokenClaims is the payload of an identity token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Email      string `json:"email"`
	Name       string `json:"name"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	Role       string `json:"role"`
	Company    string `json:"company"`
	Provider   string `json:"provider"`
	ObjectID   string `json:"oid"`
	TenantID   string `json:"tid"`
	SessionID  string `json:"sid"`
}

// Validate implements jwt.ClaimsValidator: an identity needs a subject.
func (c *tokenClaims) Validate() error {
	if c.Subject == "" {
		return fmt.Errorf("%w: sub", jwt.ErrTokenRequiredClaimMissing)
	}
	return nil
}

func (c *tokenClaims) identity() *Identity {
	id := &Identity{
		UserID:     c.Subject,
		Email:      c.Email,
		Name:       c.Name,
		GivenName:  c.GivenName,
		FamilyName: c.FamilyName,
		Role:       c.Role,
		Company:    c.Company,
		Provider:   c.Provider,
		ObjectID:   c.ObjectID,
		TenantID:   c.TenantID,
		SessionID:  c.SessionID,
	}
	if c.IssuedAt != nil {
		id.IssuedAt = c.IssuedAt.UTC()
	}
	if c.ExpiresAt != nil {
		id.ExpiresAt = c.ExpiresAt.UTC()
	}
	return id
}

// validHeaderName reports whether name is a valid HTTP field name (RFC 9110
// token).
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == '!' || c == '#' || c == '$' ||
			c == '%' || c == '&' || c == '\'' || c == '*' || c == '+' || c == '^' ||
			c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}
