package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/caddymodule/token"
)

// keysBlob is the store blob holding the shared signing keys.
const keysBlob = "signing-keys"

// keyRefreshEvery is how often an instance re-reads the shared keys, to
// follow a rotation made by another instance. A token signed with a key an
// instance does not know yet fails upstream only if the upstream asked that
// instance's JWKS; the previous key stays published well past this.
const keyRefreshEvery = 30 * time.Second

// storedKeys is the JSON in the keys blob: retired keys first, the current
// signing key last.
type storedKeys struct {
	Keys []storedKey `json:"keys"`
}

type storedKey struct {
	PEM     string    `json:"pem"`
	Created time.Time `json:"created"`
	// RetireAt is when a previous key leaves the JWKS; zero for the current.
	RetireAt time.Time `json:"retire_at,omitzero"`
}

// loadKeys sets up the signing keys: from signing_key_file when given (the
// operator rotates by replacing the file), else shared through the store so
// that every instance signs with the same key, created by the first one.
func (a *App) loadKeys(ctx context.Context) error {
	if f := a.Token.SigningKeyFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("token.signing_key_file: %w", err)
		}
		k, err := token.ParsePEMKey(data)
		if err != nil {
			return fmt.Errorf("token.signing_key_file %s: %w", f, err)
		}
		a.keys = token.NewKeySet(k)
		return nil
	}
	sk, raw, err := a.sharedKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading the shared token signing key from the session store: %w", err)
	}
	ks, err := buildKeySet(sk, a.now())
	if err != nil {
		return fmt.Errorf("shared token signing keys: %w", err)
	}
	a.keys, a.keysRaw = ks, raw
	return nil
}

// sharedKeys reads the keys blob, creating it with a new key if there is
// none (compare-and-swap, so concurrent instances agree on one key).
func (a *App) sharedKeys(ctx context.Context) (storedKeys, []byte, error) {
	for range 5 {
		raw, err := a.store.GetBlob(ctx, keysBlob)
		if errors.Is(err, session.ErrNotFound) {
			k, err := token.GenerateKey(rand.Reader, a.now())
			if err != nil {
				return storedKeys{}, nil, err
			}
			pemKey, err := k.MarshalPEM()
			if err != nil {
				return storedKeys{}, nil, err
			}
			fresh, err := json.Marshal(storedKeys{Keys: []storedKey{{PEM: string(pemKey), Created: k.Created}}})
			if err != nil {
				return storedKeys{}, nil, err
			}
			if _, err := a.store.CompareAndSwapBlob(ctx, keysBlob, nil, fresh); err != nil {
				return storedKeys{}, nil, err
			}
			continue // read back whatever won
		}
		if err != nil {
			return storedKeys{}, nil, err
		}
		var sk storedKeys
		if err := json.Unmarshal(raw, &sk); err != nil || len(sk.Keys) == 0 {
			return storedKeys{}, nil, fmt.Errorf("the %q blob in the store is not a key list (%v)", keysBlob, err)
		}
		return sk, raw, nil
	}
	return storedKeys{}, nil, errors.New("the signing keys kept changing while being read")
}

// buildKeySet makes a KeySet signing with the last key and publishing the
// previous ones until their retirement.
func buildKeySet(sk storedKeys, now time.Time) (*token.KeySet, error) {
	var ks *token.KeySet
	for i, s := range sk.Keys {
		k, err := token.ParsePEMKey([]byte(s.PEM))
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		k.Created = s.Created
		if ks == nil {
			ks = token.NewKeySet(k)
			continue
		}
		if err := ks.Rotate(k, sk.Keys[i-1].RetireAt); err != nil {
			return nil, err
		}
	}
	if ks == nil {
		return nil, errors.New("no key")
	}
	ks.Prune(now)
	return ks, nil
}

// keyLoop follows key changes made by other instances, prunes retired keys
// and rotates the key when it is older than token.rotate_every.
func (a *App) keyLoop(ctx context.Context) {
	t := time.NewTicker(keyRefreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := a.refreshKeys(ctx); err != nil && ctx.Err() == nil {
			a.logger.Warn("refreshing the shared signing keys failed; signing with the current key", zap.Error(err))
			continue
		}
		if every := time.Duration(a.Token.RotateEvery); every > 0 {
			if cur := a.keys.Current(); cur != nil && a.now().Sub(cur.Created) >= every {
				if err := a.RotateKey(ctx); err != nil && ctx.Err() == nil {
					a.logger.Warn("scheduled signing key rotation failed", zap.Error(err))
				}
			}
		}
	}
}

// refreshKeys re-reads the keys blob and adopts a new current key.
func (a *App) refreshKeys(ctx context.Context) error {
	a.keys.Prune(a.now())
	raw, err := a.store.GetBlob(ctx, keysBlob)
	if err != nil {
		return err
	}
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	if bytes.Equal(raw, a.keysRaw) {
		return nil
	}
	return a.adoptKeysLocked(raw)
}

func (a *App) adoptKeysLocked(raw []byte) error {
	var sk storedKeys
	if err := json.Unmarshal(raw, &sk); err != nil || len(sk.Keys) == 0 {
		return fmt.Errorf("the %q blob is not a key list (%v)", keysBlob, err)
	}
	last := sk.Keys[len(sk.Keys)-1]
	k, err := token.ParsePEMKey([]byte(last.PEM))
	if err != nil {
		return err
	}
	k.Created = last.Created
	retire := a.now().Add(2*time.Duration(a.Token.TTL) + time.Minute)
	if len(sk.Keys) > 1 {
		retire = sk.Keys[len(sk.Keys)-2].RetireAt
	}
	if err := a.keys.Rotate(k, retire); err != nil {
		return err
	}
	a.keysRaw = raw
	a.tokens.clear()
	return nil
}

// RotateKey makes a new signing key current on every instance. The
// previous key stays in the JWKS until every token it signed has expired
// (twice the token TTL plus a minute). It is the command behind
// token.rotate_every; with signing_key_file, replace the file instead.
func (a *App) RotateKey(ctx context.Context) error {
	if a.Token.SigningKeyFile != "" {
		return errors.New("the signing key comes from token.signing_key_file: replace the file and reload to rotate it")
	}
	a.keyMu.Lock()
	defer a.keyMu.Unlock()
	var sk storedKeys
	if err := json.Unmarshal(a.keysRaw, &sk); err != nil {
		return err
	}
	now := a.now()
	k, err := token.GenerateKey(rand.Reader, now)
	if err != nil {
		return err
	}
	pemKey, err := k.MarshalPEM()
	if err != nil {
		return err
	}
	var next storedKeys
	for _, s := range sk.Keys[:len(sk.Keys)-1] {
		if s.RetireAt.After(now) {
			next.Keys = append(next.Keys, s)
		}
	}
	prev := sk.Keys[len(sk.Keys)-1]
	prev.RetireAt = now.Add(2*time.Duration(a.Token.TTL) + time.Minute)
	next.Keys = append(next.Keys, prev, storedKey{PEM: string(pemKey), Created: now})
	raw, err := json.Marshal(next)
	if err != nil {
		return err
	}
	swapped, err := a.store.CompareAndSwapBlob(ctx, keysBlob, a.keysRaw, raw)
	if err != nil {
		return fmt.Errorf("storing the rotated signing key: %w", err)
	}
	if !swapped {
		// Another instance rotated first: adopt its key instead.
		current, err := a.store.GetBlob(ctx, keysBlob)
		if err != nil {
			return err
		}
		return a.adoptKeysLocked(current)
	}
	if err := a.adoptKeysLocked(raw); err != nil {
		return err
	}
	a.logger.Info("rotated the token signing key", zap.String("kid", k.ID), zap.Time("previous_key_retires", prev.RetireAt))
	return nil
}
