package token

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoSigningKey is returned when minting with a KeySet that has no usable
// current key.
var ErrNoSigningKey = errors.New("token: no signing key")

// KeySet holds the current signing key and the public keys of retired signing
// keys that must stay published until the tokens they signed have expired.
//
// A KeySet is safe for concurrent use. Readers (minting, JWKS) never block:
// every change builds a new immutable snapshot, including the JWKS document,
// so the document is rendered once per change rather than once per request.
type KeySet struct {
	mu    sync.Mutex // serialises writers
	state atomic.Pointer[keyState]
}

// keyState is an immutable snapshot of a KeySet.
type keyState struct {
	current *signingKey // nil when the set has no usable key
	err     error       // why current is nil
	retired []retiredKey
	jwks    []byte
}

// signingKey is a Key with what minting needs precomputed.
type signingKey struct {
	key    *Key
	header string // base64url-encoded JOSE header, without the trailing '.'
	jwk    jwk
}

// retiredKey is the public half of a former signing key, published until
// the given time.
type retiredKey struct {
	jwk   jwk
	until time.Time
}

// NewKeySet returns a KeySet that signs with current.
//
// current should come from [GenerateKey] or [ParsePEMKey]; if its ID is empty
// the JWK thumbprint is used. If current is nil or unusable the KeySet
// publishes no keys and minting fails with an error wrapping [ErrNoSigningKey]
// until [KeySet.Rotate] installs a valid key.
func NewKeySet(current *Key) *KeySet {
	ks := &KeySet{}
	sk, err := newSigningKey(current)
	st := &keyState{current: sk, err: err}
	if err := st.render(); err != nil {
		st.current, st.err, st.jwks = nil, err, []byte(`{"keys":[]}`)
	}
	ks.state.Store(st)
	return ks
}

// Current returns the key that signs new tokens, or nil if there is none.
func (ks *KeySet) Current() *Key {
	if sk := ks.state.Load().current; sk != nil {
		return sk.key
	}
	return nil
}

// JWKS returns the JSON Web Key Set document publishing the public keys of
// the current key and of every retired key not yet pruned:
//
//	{"keys":[{"kty":"EC","crv":"P-256","x":"…","y":"…","kid":"…","alg":"ES256","use":"sig"}]}
//
// The document is cached and only recomputed when the keys change. The
// returned slice is shared by all callers and must not be modified.
func (ks *KeySet) JWKS() []byte {
	return ks.state.Load().jwks
}

// Rotate makes next the signing key. The previous signing key stops signing
// at once but its public key stays in the JWKS until [KeySet.Prune] is called
// with a time at or after retireAt, so that tokens it has signed still
// verify. retireAt should be at least the token lifetime (plus the
// verifiers' clock leeway) after now.
//
// Rotating to the current key is a no-op. Rotating to a retired key makes it
// current again.
func (ks *KeySet) Rotate(next *Key, retireAt time.Time) error {
	sk, err := newSigningKey(next)
	if err != nil {
		return fmt.Errorf("token: rotating keys: %w", err)
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()

	old := ks.state.Load()
	if old.current != nil && old.current.key.ID == sk.key.ID {
		return nil
	}
	st := &keyState{current: sk}
	if old.current != nil {
		st.retired = append(st.retired, retiredKey{jwk: old.current.jwk, until: retireAt})
	}
	for _, r := range old.retired {
		if r.jwk.Kid != sk.key.ID {
			st.retired = append(st.retired, r)
		}
	}
	if err := st.render(); err != nil {
		return fmt.Errorf("token: rotating keys: %w", err)
	}
	ks.state.Store(st)
	return nil
}

// Prune removes the retired public keys whose retirement time is at or
// before now, and reports how many it removed.
func (ks *KeySet) Prune(now time.Time) int {
	ks.mu.Lock()
	defer ks.mu.Unlock()

	old := ks.state.Load()
	keep := make([]retiredKey, 0, len(old.retired))
	for _, r := range old.retired {
		if r.until.After(now) {
			keep = append(keep, r)
		}
	}
	removed := len(old.retired) - len(keep)
	if removed == 0 {
		return 0
	}
	st := &keyState{current: old.current, err: old.err, retired: keep}
	if err := st.render(); err != nil {
		// Rendering cannot fail for keys that rendered before; keep the old
		// snapshot rather than publish a broken document.
		return 0
	}
	ks.state.Store(st)
	return removed
}

// signer returns the current signing key or an error wrapping
// ErrNoSigningKey.
func (ks *KeySet) signer() (*signingKey, error) {
	if ks == nil {
		return nil, fmt.Errorf("%w: no key set", ErrNoSigningKey)
	}
	st := ks.state.Load()
	if st.current == nil {
		return nil, fmt.Errorf("%w: %w", ErrNoSigningKey, st.err)
	}
	return st.current, nil
}

// render computes the JWKS document of st.
func (st *keyState) render() error {
	keys := make([]jwk, 0, 1+len(st.retired))
	if st.current != nil {
		keys = append(keys, st.current.jwk)
	}
	for _, r := range st.retired {
		keys = append(keys, r.jwk)
	}
	doc, err := jwksDocument(keys)
	if err != nil {
		return err
	}
	st.jwks = doc
	return nil
}

// newSigningKey validates k and precomputes its JWK and JOSE header. A key
// without ID gets its thumbprint; k itself is never modified.
func newSigningKey(k *Key) (*signingKey, error) {
	if err := k.check(); err != nil {
		return nil, err
	}
	if k.ID == "" {
		kid, err := Thumbprint(&k.Private.PublicKey)
		if err != nil {
			return nil, err
		}
		k = &Key{ID: kid, Private: k.Private, Created: k.Created}
	}
	j, err := newJWK(&k.Private.PublicKey, k.ID)
	if err != nil {
		return nil, err
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{Algorithm, k.ID, "JWT"})
	if err != nil {
		return nil, fmt.Errorf("token: encoding header for key %s: %w", k.ID, err)
	}
	return &signingKey{
		key:    k,
		header: base64.RawURLEncoding.EncodeToString(header),
		jwk:    j,
	}, nil
}
