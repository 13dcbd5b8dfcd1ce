package engageauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// fetch downloads and parses the JWKS.
func (v *Verifier) fetch(ctx context.Context) (map[string]*ecdsa.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.opts.JWKSURL, nil)
	if err != nil {
		return nil, fmt.Errorf("building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("fetching JWKS from %s: status %s", v.opts.JWKSURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading JWKS from %s: %w", v.opts.JWKSURL, err)
	}
	if len(body) > MaxJWKSSize {
		return nil, fmt.Errorf("JWKS from %s is larger than %d bytes", v.opts.JWKSURL, MaxJWKSSize)
	}
	return parseJWKS(body)
}

// rawJWK is one key of a JWKS document, with the members this package reads.
type rawJWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// parseJWKS returns the ES256 signing keys of a JWKS document by key ID.
// Keys of other types, curves, algorithms or uses, and keys without an ID,
// are skipped; a document without any usable key, with a malformed P-256 key
// or with a repeated key ID is an error.
func parseJWKS(data []byte) (map[string]*ecdsa.PublicKey, error) {
	var doc struct {
		Keys []rawJWK `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("engageauth: parsing JWKS: %w", err)
	}
	keys := make(map[string]*ecdsa.PublicKey, len(doc.Keys))
	for _, k := range doc.Keys {
		if k.Kty != "EC" || k.Crv != "P-256" || k.Kid == "" ||
			(k.Alg != "" && k.Alg != "ES256") || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if _, dup := keys[k.Kid]; dup {
			return nil, fmt.Errorf("engageauth: parsing JWKS: duplicate key id %q", k.Kid)
		}
		pub, err := p256PublicKey(k.X, k.Y)
		if err != nil {
			return nil, fmt.Errorf("engageauth: parsing JWKS key %q: %w", k.Kid, err)
		}
		keys[k.Kid] = pub
	}
	if len(keys) == 0 {
		return nil, errors.New("engageauth: parsing JWKS: no ES256 signing keys")
	}
	return keys, nil
}

// p256PublicKey decodes the base64url coordinates of a P-256 point and
// checks that the point is on the curve.
func p256PublicKey(x, y string) (*ecdsa.PublicKey, error) {
	const size = 32
	point := make([]byte, 1, 1+2*size)
	point[0] = 4 // uncompressed
	for _, c := range [...]struct{ name, b64 string }{{"x", x}, {"y", y}} {
		b, err := base64.RawURLEncoding.DecodeString(c.b64)
		if err != nil {
			return nil, fmt.Errorf("decoding %s: %w", c.name, err)
		}
		if len(b) != size {
			return nil, fmt.Errorf("%s is %d bytes; want %d", c.name, len(b), size)
		}
		point = append(point, b...)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		return nil, fmt.Errorf("invalid P-256 point: %w", err)
	}
	return pub, nil
}
