package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Defaults of a zero Minter.
const (
	// DefaultIssuer is the "iss" claim of tokens minted by engage-sso.
	DefaultIssuer = "engage-sso"
	// DefaultAudience is the "aud" claim of identity tokens.
	DefaultAudience = "engage"
	// DefaultTTL is the lifetime of identity tokens.
	DefaultTTL = 5 * time.Minute
)

// NotBeforeSkew is how far before the issue time the "nbf" claim is set, so
// that a verifier whose clock runs a little behind ours, and which allows no
// leeway of its own, still accepts a freshly minted token.
const NotBeforeSkew = 5 * time.Second

// The roles an identity can have, lowest first.
const (
	RoleAgent         = "agent"
	RoleSupervisor    = "supervisor"
	RoleAccountHolder = "account_holder"
)

// Claims is the identity carried by a token, beyond the registered claims
// (iss, aud, iat, nbf, exp) that the Minter sets.
type Claims struct {
	Subject    string // "sub": the user id from the directory; required
	Email      string // "email"
	Name       string // "name": display name
	GivenName  string // "given_name"
	FamilyName string // "family_name"
	Role       string // "role": RoleAgent, RoleSupervisor or RoleAccountHolder; required
	Company    string // "company"
	Provider   string // "provider": the provider label
	ObjectID   string // "oid": Azure object id
	TenantID   string // "tid": Azure tenant id

	// SessionID ("sid") identifies the session to the upstream, e.g. for
	// logging or single logout. It must be a non-secret identifier, never the
	// session cookie value: the token is readable by the upstream and anything
	// that logs its headers.
	SessionID string
}

// Minter mints signed tokens. Its zero-valued fields take the documented
// defaults; Keys is required. A Minter is safe for concurrent use as long as
// its fields are not changed.
type Minter struct {
	// Issuer is the "iss" claim. Default: DefaultIssuer.
	Issuer string

	// Audience is the "aud" claim of identity tokens. Default:
	// DefaultAudience.
	Audience string

	// TTL is the lifetime of identity tokens. Default: DefaultTTL.
	TTL time.Duration

	// Keys provides the signing key.
	Keys *KeySet

	// Now returns the current time. Default: time.Now.
	Now func() time.Time
}

// identityPayload is the JSON payload of an identity token, in the order of
// the upstream contract.
type identityPayload struct {
	Issuer     string `json:"iss"`
	Audience   string `json:"aud"`
	Subject    string `json:"sub"`
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
	IssuedAt   int64  `json:"iat"`
	NotBefore  int64  `json:"nbf"`
	Expires    int64  `json:"exp"`
}

// servicePayload is the JSON payload of a token minted by MintAudience.
type servicePayload struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	Subject   string `json:"sub"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expires   int64  `json:"exp"`
}

// Mint returns a signed identity token for c and its expiry time.
//
// The token is issued now (iat), valid from NotBeforeSkew earlier (nbf) and
// expires TTL after now (exp), all at one-second precision; expires is the
// exp claim. The subject and a known role are required.
func (m *Minter) Mint(c Claims) (token string, expires time.Time, err error) {
	if c.Subject == "" {
		return "", time.Time{}, errors.New("token: minting identity token: empty subject")
	}
	switch c.Role {
	case RoleAgent, RoleSupervisor, RoleAccountHolder:
	default:
		return "", time.Time{}, fmt.Errorf("token: minting identity token: unknown role %q", c.Role)
	}
	ttl, err := m.ttl(0)
	if err != nil {
		return "", time.Time{}, err
	}
	iat, nbf, exp := m.times(ttl)
	token, err = m.sign(&identityPayload{
		Issuer:     m.issuer(),
		Audience:   orDefault(m.Audience, DefaultAudience),
		Subject:    c.Subject,
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
		IssuedAt:   iat,
		NotBefore:  nbf,
		Expires:    exp,
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, time.Unix(exp, 0), nil
}

// MintAudience returns a signed token for another audience, such as
// "user-hook" for calls to the upstream user hook, carrying only the
// registered claims iss, aud, sub, iat, nbf and exp. A ttl of zero means the
// Minter's TTL.
func (m *Minter) MintAudience(aud, subject string, ttl time.Duration) (string, error) {
	if aud == "" {
		return "", errors.New("token: minting token: empty audience")
	}
	if subject == "" {
		return "", fmt.Errorf("token: minting token for %q: empty subject", aud)
	}
	ttl, err := m.ttl(ttl)
	if err != nil {
		return "", err
	}
	iat, nbf, exp := m.times(ttl)
	return m.sign(&servicePayload{
		Issuer:    m.issuer(),
		Audience:  aud,
		Subject:   subject,
		IssuedAt:  iat,
		NotBefore: nbf,
		Expires:   exp,
	})
}

// sign encodes payload and signs it with the current key. The header is
// precomputed per key and the token is assembled in a single buffer.
func (m *Minter) sign(payload any) (string, error) {
	sk, err := m.Keys.signer()
	if err != nil {
		return "", fmt.Errorf("token: signing: %w", err)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", fmt.Errorf("token: encoding claims: %w", err)
	}
	enc := base64.RawURLEncoding
	// An ES256 signature is 64 bytes, 86 in base64url.
	buf := make([]byte, 0, len(sk.header)+1+enc.EncodedLen(len(body))+1+enc.EncodedLen(64))
	buf = append(buf, sk.header...)
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, body)
	sig, err := jwt.SigningMethodES256.Sign(string(buf), sk.key.Private)
	if err != nil {
		return "", fmt.Errorf("token: signing with key %s: %w", sk.key.ID, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), nil
}

// times returns iat, nbf and exp in Unix seconds for a token issued now.
func (m *Minter) times(ttl time.Duration) (iat, nbf, exp int64) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	return t.Unix(), t.Add(-NotBeforeSkew).Unix(), t.Add(ttl).Unix()
}

// ttl returns the lifetime to use: override if non-zero, else the Minter's
// TTL, else DefaultTTL.
func (m *Minter) ttl(override time.Duration) (time.Duration, error) {
	ttl := override
	if ttl == 0 {
		ttl = m.TTL
	}
	switch {
	case ttl == 0:
		return DefaultTTL, nil
	case ttl < 0:
		return 0, fmt.Errorf("token: negative lifetime %s", ttl)
	}
	return ttl, nil
}

func (m *Minter) issuer() string { return orDefault(m.Issuer, DefaultIssuer) }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
