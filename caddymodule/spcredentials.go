package caddymodule

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"

	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// spCredentialsBlob is the store blob holding the SAML SP key pair shared
// by the providers that have no sp_certificate of their own.
const spCredentialsBlob = "saml-sp-credentials"

// storedCredentials is the JSON in the SP credentials blob.
type storedCredentials struct {
	Certificate string    `json:"certificate"` // PEM
	Key         string    `json:"key"`         // PEM, PKCS #8
	Created     time.Time `json:"created"`
}

// providerCredentials returns the SP key pair of p: from its sp_certificate
// files, else the deployment's shared one. It returns nil when p needs
// none.
func (a *App) providerCredentials(ctx context.Context, p *Provider) (*samlsp.Credentials, error) {
	if !p.needsCredentials() {
		return nil, nil
	}
	if p.SPCertFile != "" {
		certPEM, err := os.ReadFile(p.SPCertFile)
		if err != nil {
			return nil, fmt.Errorf("sp_certificate: %w", err)
		}
		keyPEM, err := os.ReadFile(p.SPKeyFile)
		if err != nil {
			return nil, fmt.Errorf("sp_certificate: %w", err)
		}
		c, err := samlsp.ParseCredentials(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("sp_certificate %s %s: %w", p.SPCertFile, p.SPKeyFile, err)
		}
		a.warnCertificateExpiry(p.Label, c)
		return c, nil
	}
	if a.spCreds == nil {
		c, err := a.sharedSPCredentials(ctx)
		if err != nil {
			return nil, fmt.Errorf("loading the shared SAML SP key from the session store: %w", err)
		}
		a.spCreds = c
		if ms, ok := a.storeMod.(*MemoryStore); ok && ms.Persist != nil && !*ms.Persist {
			a.logger.Warn("the generated SAML SP key pair lives in memory only (store memory with persist off): it changes at every restart, and the IdP must then be given the new certificate; set sp_certificate, or persist on",
				zap.String("provider", p.Label))
		}
	}
	a.warnCertificateExpiry(p.Label, a.spCreds)
	return a.spCreds, nil
}

// warnCertificateExpiry logs a warning when the SP certificate expires in
// less than 30 days: Azure stops encrypting to (or accepting requests
// signed with) an expired certificate.
func (a *App) warnCertificateExpiry(label string, c *samlsp.Credentials) {
	if left := c.Certificate.NotAfter.Sub(a.now()); left < 30*24*time.Hour {
		a.logger.Warn("the SAML SP certificate expires soon or has expired; give the provider a new sp_certificate and upload it to the IdP",
			zap.String("provider", label), zap.Time("not_after", c.Certificate.NotAfter))
	}
}

// sharedSPCredentials reads the SP credentials blob, creating it with a
// new key pair if there is none (compare-and-swap, so that concurrent
// instances agree on one).
func (a *App) sharedSPCredentials(ctx context.Context) (*samlsp.Credentials, error) {
	for range 5 {
		raw, err := a.store.GetBlob(ctx, spCredentialsBlob)
		if errors.Is(err, session.ErrNotFound) {
			c, err := samlsp.GenerateCredentials(nil, "engage-sso SAML service provider", a.now())
			if err != nil {
				return nil, err
			}
			certPEM, keyPEM, err := c.MarshalPEM()
			if err != nil {
				return nil, err
			}
			fresh, err := json.Marshal(storedCredentials{Certificate: string(certPEM), Key: string(keyPEM), Created: a.now()})
			if err != nil {
				return nil, err
			}
			if _, err := a.store.CompareAndSwapBlob(ctx, spCredentialsBlob, nil, fresh); err != nil {
				return nil, err
			}
			continue // read back whatever won
		}
		if err != nil {
			return nil, err
		}
		var sc storedCredentials
		if err := json.Unmarshal(raw, &sc); err != nil {
			return nil, fmt.Errorf("the %q blob in the store is not an SP key pair: %w", spCredentialsBlob, err)
		}
		c, err := samlsp.ParseCredentials([]byte(sc.Certificate), []byte(sc.Key))
		if err != nil {
			return nil, fmt.Errorf("the %q blob in the store: %w", spCredentialsBlob, err)
		}
		return c, nil
	}
	return nil, errors.New("the SP key pair kept changing while being read")
}

// previousKeys reads p's sp_previous_key files.
func previousKeys(p *Provider) ([]*rsa.PrivateKey, error) {
	var keys []*rsa.PrivateKey
	for _, f := range p.SPPreviousKeyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("sp_previous_key: %w", err)
		}
		k, err := samlsp.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("sp_previous_key %s: %w", f, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
