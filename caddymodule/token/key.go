// Package token mints the short-lived identity tokens (JWTs) that engage-sso
// sends upstream, and manages the keys that sign them.
//
// Tokens are signed with ES256 (ECDSA P-256 and SHA-256). Every token names
// its key in the "kid" header; the key ID is the RFC 7638 JWK thumbprint of the
// public key. A [KeySet] holds the current signing key and the public keys of
// recently retired ones, and renders them as a JWKS document for
// /sso/.well-known/jwks.json, so upstream applications can verify tokens
// across key rotations.
//
// The package has no Caddy dependency; caddymodule wires it up.
package token

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"time"
)

// Algorithm is the JWS algorithm of every token and key this package handles.
const Algorithm = "ES256"

// Key is an ECDSA P-256 signing key.
type Key struct {
	// ID is the key ID put in the "kid" header of every token the key signs:
	// the RFC 7638 JWK thumbprint of the public key, base64url without padding.
	ID string

	// Private is the signing key. It must be on the P-256 curve.
	Private *ecdsa.PrivateKey

	// Created is when the key was generated. It is the zero time for keys
	// parsed from PEM, which carries no creation time.
	Created time.Time
}

// GenerateKey returns a new P-256 signing key created at now.
//
// The key material is read from random; nil means crypto/rand.Reader. Since
// Go 1.26 the standard library always uses a secure source of randomness for
// key generation and ignores random unless GODEBUG=cryptocustomrand=1 is set.
func GenerateKey(random io.Reader, now time.Time) (*Key, error) {
	if random == nil {
		random = rand.Reader
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), random)
	if err != nil {
		return nil, fmt.Errorf("token: generating P-256 key: %w", err)
	}
	return newKey(priv, now)
}

// ParsePEMKey parses a P-256 private key from PEM: either a SEC 1
// "EC PRIVATE KEY" block or a PKCS #8 "PRIVATE KEY" block. An "EC PARAMETERS"
// block before the key (as written by `openssl ecparam -genkey`) is skipped.
// Other curves, RSA and Ed25519 keys, encrypted keys and anything that is not
// PEM are refused.
func ParsePEMKey(data []byte) (*Key, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("token: no PEM private key block found")
		}
		switch block.Type {
		case "EC PARAMETERS":
			continue
		case "EC PRIVATE KEY":
			priv, err := x509.ParseECPrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("token: parsing EC PRIVATE KEY: %w", err)
			}
			return newKey(priv, time.Time{})
		case "PRIVATE KEY":
			parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("token: parsing PKCS #8 PRIVATE KEY: %w", err)
			}
			switch priv := parsed.(type) {
			case *ecdsa.PrivateKey:
				return newKey(priv, time.Time{})
			case *rsa.PrivateKey:
				return nil, errors.New("token: RSA keys are not supported; use an ECDSA P-256 key")
			case ed25519.PrivateKey:
				return nil, errors.New("token: Ed25519 keys are not supported; use an ECDSA P-256 key")
			default:
				return nil, fmt.Errorf("token: unsupported private key type %T; use an ECDSA P-256 key", parsed)
			}
		case "RSA PRIVATE KEY":
			return nil, errors.New("token: RSA keys are not supported; use an ECDSA P-256 key")
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("token: encrypted private keys are not supported")
		default:
			return nil, fmt.Errorf("token: unexpected PEM block %q; want EC PRIVATE KEY or PRIVATE KEY", block.Type)
		}
	}
}

// MarshalPEM encodes the private key as a PKCS #8 "PRIVATE KEY" PEM block.
func (k *Key) MarshalPEM() ([]byte, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Private)
	if err != nil {
		return nil, fmt.Errorf("token: marshalling key %s: %w", k.ID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Thumbprint returns the RFC 7638 JWK SHA-256 thumbprint of pub, encoded as
// base64url without padding. It is the key ID this package uses.
func Thumbprint(pub *ecdsa.PublicKey) (string, error) {
	j, err := newJWK(pub, "")
	if err != nil {
		return "", err
	}
	// RFC 7638 section 3.2: required members only, in lexicographic order, no
	// whitespace. The coordinates are base64url, which needs no JSON escaping.
	canonical := `{"crv":"P-256","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

// newKey wraps priv, which must be a P-256 key, in a Key with its thumbprint
// as ID.
func newKey(priv *ecdsa.PrivateKey, created time.Time) (*Key, error) {
	if priv.Curve != elliptic.P256() {
		return nil, fmt.Errorf("token: unsupported curve %s; use P-256", priv.Curve.Params().Name)
	}
	kid, err := Thumbprint(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Key{ID: kid, Private: priv, Created: created}, nil
}

// check reports whether k is usable for signing.
func (k *Key) check() error {
	switch {
	case k == nil || k.Private == nil:
		return errors.New("token: missing private key")
	case k.Private.Curve != elliptic.P256():
		return errors.New("token: signing key is not on curve P-256")
	}
	return nil
}

// jwk is one public key of a JWKS document (RFC 7517), restricted to the
// members this package emits.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// newJWK returns the JWK of a P-256 public key.
func newJWK(pub *ecdsa.PublicKey, kid string) (jwk, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return jwk{}, errors.New("token: public key is not on curve P-256")
	}
	raw, err := pub.Bytes() // 0x04 || X || Y, 32 bytes each for P-256.
	if err != nil {
		return jwk{}, fmt.Errorf("token: encoding public key: %w", err)
	}
	if len(raw) != 65 {
		return jwk{}, fmt.Errorf("token: unexpected P-256 public key length %d", len(raw))
	}
	return jwk{
		Kty: "EC",
		Crv: "P-256",
		X:   base64.RawURLEncoding.EncodeToString(raw[1:33]),
		Y:   base64.RawURLEncoding.EncodeToString(raw[33:65]),
		Kid: kid,
		Alg: Algorithm,
		Use: "sig",
	}, nil
}

// jwksDocument renders keys as a JWKS document.
func jwksDocument(keys []jwk) ([]byte, error) {
	if keys == nil {
		keys = []jwk{}
	}
	doc, err := json.Marshal(struct {
		Keys []jwk `json:"keys"`
	}{keys})
	if err != nil {
		return nil, fmt.Errorf("token: encoding JWKS: %w", err)
	}
	return doc, nil
}
