package caddymodule

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/engage-sso/engage-sso/caddymodule/graph"
	"github.com/engage-sso/engage-sso/caddymodule/identity"
	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
)

const defaultMetadataRefresh = 12 * time.Hour

// provider is a configured provider at run time: its policy and the SAML SP
// built from the IdP's current metadata.
type provider struct {
	cfg     *Provider
	company *Company
	policy  identity.Policy
	app     *App

	entityID    string
	acsURL      string
	metadataURL string
	sloURL      string

	graph      *graph.Client // resolves group overage, or nil
	encryption samlsp.EncryptionMode
	creds      *samlsp.Credentials // the SP key pair, or nil when not needed
	prevKeys   []*rsa.PrivateKey   // sp_previous_key: decrypt only

	sp      atomic.Pointer[samlsp.SP]
	lastErr atomic.Pointer[string]
}

func (a *App) newProvider(ctx context.Context, c *Company, p *Provider) (*provider, error) {
	mapping, mode, err := p.mapping()
	if err != nil {
		return nil, err
	}
	prov := &provider{
		cfg:     p,
		company: c,
		app:     a,
		policy: identity.Policy{
			Company:  c.ID,
			Provider: p.Label,
			Domains:  c.Domains,
			Mode:     mode,
			Mapping:  mapping,
			Claims:   p.Claims,
		},
		entityID:    p.EntityID,
		acsURL:      a.BaseURL + "/sso/saml/" + p.Label + "/acs",
		metadataURL: a.BaseURL + "/sso/saml/" + p.Label + "/metadata",
		sloURL:      a.BaseURL + "/sso/saml/" + p.Label + "/slo",
	}
	if prov.entityID == "" {
		prov.entityID = a.BaseURL + "/sso/saml/" + p.Label
	}
	if prov.encryption, err = p.encryptionMode(); err != nil {
		return nil, fmt.Errorf("encryption: %w", err)
	}
	if prov.creds, err = a.providerCredentials(ctx, p); err != nil {
		return nil, err
	}
	if prov.prevKeys, err = previousKeys(p); err != nil {
		return nil, err
	}
	if g := p.Graph; g != nil {
		prov.graph, err = graph.New(graph.Config{
			TenantID:     g.TenantID,
			ClientID:     g.ClientID,
			ClientSecret: g.ClientSecret,
			LoginURL:     g.LoginURL,
			GraphURL:     g.GraphURL,
			Timeout:      time.Duration(g.Timeout),
			Now:          a.now,
		})
		if err != nil {
			return nil, fmt.Errorf("graph: %w", err)
		}
	}
	if p.AllowSHA1 {
		a.logger.Warn("SHA-1 signed SAML responses are accepted for this provider; set the IdP's signing algorithm to SHA-256 and remove allow_sha1",
			zap.String("provider", p.Label))
	}
	if p.MetadataFile != "" {
		data, err := os.ReadFile(p.MetadataFile)
		if err != nil {
			return nil, fmt.Errorf("metadata_file: %w", err)
		}
		if err := prov.setMetadata(data); err != nil {
			return nil, fmt.Errorf("metadata_file %s: %w", p.MetadataFile, err)
		}
	} else if data, ok := lastGoodMetadata.Load(p.MetadataURL); ok {
		// A config reload: start from the metadata the previous config
		// fetched, so sign-in keeps working while it is fetched again.
		if err := prov.setMetadata(data.([]byte)); err != nil {
			return nil, fmt.Errorf("metadata_url %s (kept from before the reload): %w", p.MetadataURL, err)
		}
	} else {
		msg := "identity provider metadata has not been fetched yet"
		prov.lastErr.Store(&msg)
	}
	return prov, nil
}

// lastGoodMetadata holds, per metadata_url, the last metadata that parsed,
// so that a config reload does not take sign-in down until the first fetch
// of the new config (or for as long as the IdP is unreachable). It lives as
// long as the process, like Caddy's own usage pools; entries are a few KiB.
var lastGoodMetadata sync.Map

// setMetadata parses IdP metadata and, when it is valid, swaps in a new SP
// built from it. Invalid metadata leaves the current SP in place.
func (p *provider) setMetadata(data []byte) error {
	md, err := samlsp.ParseMetadata(data)
	if err != nil {
		return err
	}
	// What an admin should know about this file (expired certificates, a
	// signature, a non-Azure IdP) goes to the log; a metadata signature
	// that does not verify means the file was altered: refuse it.
	findings := samlsp.ValidateMetadata(data, p.app.now())
	for _, f := range findings {
		lvl := zapcore.InfoLevel
		switch f.Severity {
		case samlsp.SeverityWarning:
			lvl = zapcore.WarnLevel
		case samlsp.SeverityError:
			lvl = zapcore.ErrorLevel
		}
		if ce := p.app.logger.Check(lvl, "IdP metadata: "+f.Message); ce != nil {
			ce.Write(zap.String("provider", p.cfg.Label), zap.String("finding", f.Code))
		}
	}
	if findings.Has(samlsp.CodeSignatureInvalid) {
		return errors.New("the metadata's XML signature does not verify: the file was changed after the IdP signed it; download it again from the IdP")
	}
	// An IdP (an Azure tenant) belongs to one company: a provider of
	// another company trusting the same IdP is a configuration mistake
	// that would let one company's tenant sign its users in to the other.
	p.app.metadataMu.Lock()
	defer p.app.metadataMu.Unlock()
	for _, other := range p.app.providers {
		if other == p || other.company.ID == p.company.ID {
			continue
		}
		if osp := other.sp.Load(); osp != nil && osp.IdPEntityID() == md.EntityID {
			return fmt.Errorf("the IdP %s is already the identity provider of provider %q of company %q; an Azure tenant belongs to one company, so remove it from the company it does not belong to",
				md.EntityID, other.cfg.Label, other.company.ID)
		}
	}
	sp, err := samlsp.New(samlsp.Config{
		EntityID:          p.entityID,
		ACSURL:            p.acsURL,
		MetadataURL:       p.metadataURL,
		SLOURL:            p.sloURL,
		IdP:               md,
		AllowIdPInitiated: p.cfg.idpInitiated(),
		AllowSHA1:         p.cfg.AllowSHA1,
		ClockSkew:         time.Duration(p.cfg.ClockSkew),
		Credentials:       p.creds,
		PreviousKeys:      p.prevKeys,
		Encryption:        p.encryption,
		SignAuthnRequests: p.cfg.SignRequests,
		MaxResponseBytes:  p.cfg.maxResponseSize(),
		Replay:            p.app.store,
		Now:               p.app.now,
	})
	if err != nil {
		return fmt.Errorf("building the service provider: %w", err)
	}
	p.sp.Store(sp)
	p.lastErr.Store(nil)
	return nil
}

// ready returns the SP, or nil and the reason it is not available.
func (p *provider) ready() (*samlsp.SP, string) {
	if sp := p.sp.Load(); sp != nil {
		return sp, ""
	}
	if e := p.lastErr.Load(); e != nil {
		return nil, *e
	}
	return nil, "identity provider metadata is not loaded"
}

// fetchLoop fetches metadata_url until it succeeds (backing off from 1s to
// 1m), then refreshes it every metadata_refresh. A failed refresh keeps the
// last good metadata.
func (p *provider) fetchLoop(ctx context.Context) {
	log := p.app.logger.With(zap.String("provider", p.cfg.Label), zap.String("metadata_url", p.cfg.MetadataURL))
	refresh := time.Duration(p.cfg.MetadataRefresh)
	if refresh == 0 {
		refresh = defaultMetadataRefresh
	}
	backoff := time.Second
	for {
		err := p.fetchOnce(ctx)
		wait := refresh
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			msg := "could not load identity provider metadata: " + err.Error()
			if p.sp.Load() == nil {
				p.lastErr.Store(&msg)
			}
			log.Warn("fetching IdP metadata failed", zap.Error(err), zap.Duration("retry_in", backoff))
			wait = backoff
			backoff = min(backoff*2, time.Minute)
		default:
			log.Info("IdP metadata loaded")
			backoff = time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (p *provider) fetchOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	data, err := samlsp.LoadMetadata(ctx, p.app.httpClient(), p.cfg.MetadataURL)
	if err != nil {
		return err
	}
	if err := p.setMetadata(data); err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("invalid metadata: %w", err)
	}
	lastGoodMetadata.Store(p.cfg.MetadataURL, data)
	return nil
}
