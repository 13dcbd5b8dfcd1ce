// Package caddymodule is the Caddy glue of engage-sso: the `engage_sso` app
// (global option) that owns companies, providers, keys and the session
// store, and the `engage_sso` HTTP handler (site directive) that guards a
// site and serves the /sso/ endpoints. The protocol and policy logic lives
// in the sub-packages; this package wires them to Caddy.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/caddymodule/directory"
	"github.com/engage-sso/engage-sso/caddymodule/identity"
	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/caddymodule/token"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `engage_sso` app: one per Caddy process, shared by every site
// that uses the `engage_sso` handler. It holds the companies and their
// providers, the session store and the identity-token signing keys.
type App struct {
	// BaseURL is the public URL of the protected site, scheme and host only,
	// such as "https://engage.example.com". The SAML endpoints Azure is told
	// about are built from it: Identifier {base_url}/sso/saml/{label},
	// Reply URL {base_url}/sso/saml/{label}/acs. Required when a company is
	// configured. Cookies are marked Secure when it is https.
	BaseURL string `json:"base_url,omitempty"`

	// StoreRaw is the session store module (namespace engage_sso.stores).
	// Default: the in-memory store, for a single Caddy instance.
	StoreRaw json.RawMessage `json:"store,omitempty" caddy:"namespace=engage_sso.stores inline_key=backend"`

	// Session configures the sign-in session and its cookie.
	Session SessionConfig `json:"session,omitzero"`

	// Token configures the identity token sent upstream.
	Token TokenConfig `json:"token,omitzero"`

	// UserHook is the upstream app's user hook, through which users are
	// found and JIT-created at sign-in (docs/upstream-api.md). Without it,
	// every user whose domain and role are allowed is signed in and
	// identified by their Azure object id.
	UserHook *UserHook `json:"user_hook,omitempty"`

	// Companies are the tenants, each with its authorised domains and
	// providers.
	Companies []*Company `json:"companies,omitempty"`

	store     session.Store
	storeMod  StoreModule
	keys      *token.KeySet
	keysRaw   []byte      // the keys blob the key set was built from
	keyMu     *sync.Mutex // serialises rotations and refreshes
	minter    *token.Minter
	tokens    *tokenCache
	sessions  *sessionCache
	providers map[string]*provider
	// metadataMu serialises metadata changes across providers, so that
	// the one-company-per-IdP check and the swap are atomic.
	metadataMu *sync.Mutex
	// spCreds is the shared SAML SP key pair, loaded when a provider
	// first needs it.
	spCreds *samlsp.Credentials
	// directories are the user hook clients by URL.
	directories map[string]*directory.Client
	byDomain    map[string]*Company
	wildcard    []domainRule
	logger      *zap.Logger
	metrics     *metrics
	cancel      context.CancelFunc
	now         func() time.Time
}

// SessionConfig configures sign-in sessions.
type SessionConfig struct {
	// CookieName is the name of the session cookie. Default "engage_sso".
	CookieName string `json:"cookie_name,omitempty"`

	// IdleTimeout ends a session that has not been used for this long.
	// Default 2h.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// Lifetime ends every session this long after sign-in, however active.
	// Default 12h.
	Lifetime caddy.Duration `json:"lifetime,omitempty"`

	// LoginTimeout is how long a user has to complete sign-in at the IdP
	// once it has started. Default 10m.
	LoginTimeout caddy.Duration `json:"login_timeout,omitempty"`

	// CacheTTL is how long an instance trusts a session it loaded from the
	// store before asking the store again. A session ended on another
	// instance is normally dropped at once (the store announces it); this
	// bounds the delay when that announcement is lost. It is also how long
	// signed-in users keep working while the store is unreachable. Default
	// 5s; at most 1m.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`

	// CacheSize bounds the number of sessions cached per instance.
	// Default 100,000.
	CacheSize int `json:"cache_size,omitempty"`

	// CacheOff, when true, turns the local session cache off: every
	// request asks the store (a Redis round trip each), and a store outage
	// stops signed-in users at once.
	CacheOff bool `json:"cache_off,omitempty"`
}

// TokenConfig configures the identity token (JWT) sent upstream.
type TokenConfig struct {
	// Issuer is the `iss` claim. Default "engage-sso".
	Issuer string `json:"issuer,omitempty"`

	// Audience is the `aud` claim. Default "engage".
	Audience string `json:"audience,omitempty"`

	// TTL is the token lifetime. A token is minted once per session and
	// reused until it nears expiry. Default 5m.
	TTL caddy.Duration `json:"ttl,omitempty"`

	// SigningKeyFile is a PEM file with the ECDSA P-256 private key that
	// signs tokens ("EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY"). Default: a
	// key generated by the first instance and shared with the others
	// through the session store (with the memory store, kept in Caddy's
	// data directory so it survives restarts).
	SigningKeyFile string `json:"signing_key_file,omitempty"`

	// RotateEvery, when set, replaces the shared signing key when it is
	// this old. The previous key stays in the JWKS until every token it
	// signed has expired. Not with signing_key_file. Default: never; at
	// least 1h.
	RotateEvery caddy.Duration `json:"rotate_every,omitempty"`
}

// Defaults.
const (
	defaultCookieName   = "engage_sso"
	defaultIdleTimeout  = 2 * time.Hour
	defaultLifetime     = 12 * time.Hour
	defaultLoginTimeout = 10 * time.Minute
	defaultCacheTTL     = 5 * time.Second
	defaultCacheSize    = 100_000
	defaultTokenTTL     = 5 * time.Minute
	defaultIssuer       = "engage-sso"
	defaultAudience     = "engage"
)

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "engage_sso",
		New: func() caddy.Module { return new(App) },
	}
}

// StoreModule is a module in the engage_sso.stores namespace: it opens the
// session store the app uses.
type StoreModule interface {
	caddy.Module
	// OpenStore returns the store. The app calls Cleanup on the module (if
	// it is a caddy.CleanerUpper) when the config is unloaded, not Close on
	// the store, so a module may share one store across config reloads.
	OpenStore(ctx caddy.Context) (session.Store, error)
}

// Provision sets defaults, opens the store, loads the signing key and the
// providers' metadata.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.now = time.Now
	repl := caddy.NewReplacer()
	a.BaseURL = strings.TrimSuffix(repl.ReplaceKnown(a.BaseURL, ""), "/")
	a.Token.SigningKeyFile = repl.ReplaceKnown(a.Token.SigningKeyFile, "")
	if a.UserHook != nil {
		a.UserHook.URL = repl.ReplaceKnown(a.UserHook.URL, "")
	}
	for _, c := range a.Companies {
		c.UserHookURL = repl.ReplaceKnown(c.UserHookURL, "")
		for _, p := range c.Providers {
			if p != nil {
				p.MetadataFile = repl.ReplaceKnown(p.MetadataFile, "")
				p.MetadataURL = repl.ReplaceKnown(p.MetadataURL, "")
				p.SPCertFile = repl.ReplaceKnown(p.SPCertFile, "")
				p.SPKeyFile = repl.ReplaceKnown(p.SPKeyFile, "")
				for i, f := range p.SPPreviousKeyFiles {
					p.SPPreviousKeyFiles[i] = repl.ReplaceKnown(f, "")
				}
				if g := p.Graph; g != nil {
					g.TenantID = repl.ReplaceKnown(g.TenantID, "")
					g.ClientID = repl.ReplaceKnown(g.ClientID, "")
					g.ClientSecret = repl.ReplaceKnown(g.ClientSecret, "")
					g.LoginURL = repl.ReplaceKnown(g.LoginURL, "")
					g.GraphURL = repl.ReplaceKnown(g.GraphURL, "")
				}
			}
		}
	}
	a.setDefaults()
	if err := validateConfig(a.BaseURL, a.Companies); err != nil {
		return err
	}
	if err := a.checkDurations(); err != nil {
		return err
	}

	m, err := newMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	a.metrics = m

	if a.StoreRaw != nil {
		mod, err := ctx.LoadModule(a, "StoreRaw")
		if err != nil {
			return fmt.Errorf("loading session store: %w", err)
		}
		sm, ok := mod.(StoreModule)
		if !ok {
			return fmt.Errorf("store module %T is not a session store", mod)
		}
		a.storeMod = sm
	} else {
		mem := new(MemoryStore)
		if err := mem.Provision(ctx); err != nil {
			return err
		}
		a.storeMod = mem
	}
	a.store, err = a.storeMod.OpenStore(ctx)
	if err != nil {
		return fmt.Errorf("opening session store: %w", err)
	}
	if ct, ok := a.storeMod.(callTimeouter); ok && ct.CallTimeout() > 0 {
		a.store = deadlineStore{Store: a.store, timeout: ct.CallTimeout()}
	}

	a.keyMu = new(sync.Mutex)
	if err := a.loadKeys(ctx); err != nil {
		return err
	}
	a.minter = &token.Minter{
		Issuer:   a.Token.Issuer,
		Audience: a.Token.Audience,
		TTL:      time.Duration(a.Token.TTL),
		Keys:     a.keys,
		Now:      a.now,
	}
	if err := a.setupDirectories(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	a.tokens = newTokenCache(100_000)
	cacheTTL := time.Duration(a.Session.CacheTTL)
	if a.Session.CacheOff {
		cacheTTL = 0
	}
	a.sessions = newSessionCache(cacheTTL, a.Session.CacheSize)

	a.byDomain = map[string]*Company{}
	a.providers = map[string]*provider{}
	a.metadataMu = new(sync.Mutex)
	for _, c := range a.Companies {
		for _, d := range c.Domains {
			d = strings.ToLower(strings.TrimSpace(d))
			if suffix, ok := strings.CutPrefix(d, "*."); ok {
				a.wildcard = append(a.wildcard, domainRule{suffix: "." + suffix, company: c})
			} else {
				a.byDomain[d] = c
			}
		}
		for _, p := range c.Providers {
			prov, err := a.newProvider(ctx, c, p)
			if err != nil {
				return fmt.Errorf("company %q, provider %q: %w", c.ID, p.Label, err)
			}
			a.providers[p.Label] = prov
		}
	}
	return nil
}

func (a *App) setDefaults() {
	if a.Session.CookieName == "" {
		a.Session.CookieName = defaultCookieName
	}
	if a.Session.IdleTimeout == 0 {
		a.Session.IdleTimeout = caddy.Duration(defaultIdleTimeout)
	}
	if a.Session.Lifetime == 0 {
		a.Session.Lifetime = caddy.Duration(defaultLifetime)
	}
	if a.Session.LoginTimeout == 0 {
		a.Session.LoginTimeout = caddy.Duration(defaultLoginTimeout)
	}
	if a.Session.CacheTTL == 0 {
		a.Session.CacheTTL = caddy.Duration(defaultCacheTTL)
	}
	if a.Session.CacheSize == 0 {
		a.Session.CacheSize = defaultCacheSize
	}
	if a.Token.TTL == 0 {
		a.Token.TTL = caddy.Duration(defaultTokenTTL)
	}
	if a.Token.Issuer == "" {
		a.Token.Issuer = defaultIssuer
	}
	if a.Token.Audience == "" {
		a.Token.Audience = defaultAudience
	}
}

func (a *App) checkDurations() error {
	var errs []error
	if a.Session.IdleTimeout < caddy.Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("session.idle_timeout: %v is too short; use at least 1m", time.Duration(a.Session.IdleTimeout)))
	}
	if a.Session.Lifetime < a.Session.IdleTimeout {
		errs = append(errs, fmt.Errorf("session.lifetime (%v) must not be shorter than session.idle_timeout (%v)",
			time.Duration(a.Session.Lifetime), time.Duration(a.Session.IdleTimeout)))
	}
	if a.Session.LoginTimeout < caddy.Duration(time.Minute) || a.Session.LoginTimeout > caddy.Duration(time.Hour) {
		errs = append(errs, fmt.Errorf("session.login_timeout: %v must be between 1m and 1h", time.Duration(a.Session.LoginTimeout)))
	}
	if a.Token.RotateEvery != 0 && (a.Token.RotateEvery < caddy.Duration(time.Hour) || a.Token.SigningKeyFile != "") {
		errs = append(errs, errors.New("token.rotate_every: must be at least 1h, and cannot be used with signing_key_file (replace the file to rotate)"))
	}
	if a.Session.CacheTTL < 0 || a.Session.CacheTTL > caddy.Duration(time.Minute) {
		errs = append(errs, fmt.Errorf("session.cache_ttl: %v must be at most 1m (use cache_off to turn the cache off)", time.Duration(a.Session.CacheTTL)))
	}
	if a.Session.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("session.cache_size: %d must not be negative", a.Session.CacheSize))
	}
	if a.Token.TTL < caddy.Duration(30*time.Second) || a.Token.TTL > caddy.Duration(time.Hour) {
		errs = append(errs, fmt.Errorf("token.ttl: %v must be between 30s and 1h", time.Duration(a.Token.TTL)))
	}
	if a.UserHook != nil {
		if a.UserHook.URL != "" {
			if err := checkHookURL(a.UserHook.URL); err != nil {
				errs = append(errs, fmt.Errorf("user_hook.url: %w", err))
			}
		}
		if a.UserHook.Timeout < 0 || a.UserHook.MaxAttempts < 0 || a.UserHook.MaxAttempts > 10 {
			errs = append(errs, errors.New("user_hook: timeout must not be negative and max_attempts must be between 1 and 10"))
		}
	}
	if !validCookieName(a.Session.CookieName) {
		errs = append(errs, fmt.Errorf("session.cookie_name: %q is not a valid cookie name", a.Session.CookieName))
	}
	return errors.Join(errs...)
}

func validCookieName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// Validate checks the configuration without I/O.
func (a *App) Validate() error {
	if err := validateConfig(a.BaseURL, a.Companies); err != nil {
		return err
	}
	return a.checkDurations()
}

// Start starts fetching the metadata of providers configured by URL.
func (a *App) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	for _, p := range a.providers {
		if p.cfg.MetadataURL != "" {
			go p.fetchLoop(ctx)
		}
	}
	go a.watchRevocations(ctx)
	if a.Token.SigningKeyFile == "" {
		go a.keyLoop(ctx)
	}
	if len(a.providers) > 0 {
		a.logger.Info("engage_sso started",
			zap.String("login_url", a.BaseURL+"/sso/login"),
			zap.Int("companies", len(a.Companies)), zap.Int("providers", len(a.providers)))
	}
	return nil
}

// watchRevocations drops sessions ended on any instance from this
// instance's caches, resubscribing (with backoff) when the feed breaks.
func (a *App) watchRevocations(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		ch, err := a.store.Revocations(ctx)
		if err == nil {
			backoff = time.Second
			for id := range ch {
				a.sessions.drop(id)
				a.tokens.drop(id)
			}
		} else if ctx.Err() == nil {
			a.logger.Warn("subscribing to session revocations failed", zap.Error(err), zap.Duration("retry_in", backoff))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// RevokeUser ends every session of a user on every instance (for SCIM
// deactivation and the admin page). It returns the number ended.
func (a *App) RevokeUser(ctx context.Context, userID string) (int, error) {
	ids, err := a.store.DeleteUserSessions(ctx, userID)
	for _, id := range ids {
		a.sessions.drop(id)
		a.tokens.drop(id)
	}
	if err != nil {
		return len(ids), fmt.Errorf("revoking the sessions of user %q: %w", userID, err)
	}
	return len(ids), nil
}

// Stop stops the metadata fetchers.
func (a *App) Stop() error {
	if a.cancel != nil {
		a.cancel()
	}
	return nil
}

// Cleanup releases the store and the signing key.
func (a *App) Cleanup() error {
	if a.cancel != nil {
		a.cancel()
	}
	var errs []error
	if cu, ok := a.storeMod.(caddy.CleanerUpper); ok {
		errs = append(errs, cu.Cleanup())
	}
	if a.metrics != nil {
		a.metrics.unregister()
	}
	return errors.Join(errs...)
}

type domainRule struct {
	suffix  string
	company *Company
}

// companyForEmail finds the company that authorises the email's domain.
func (a *App) companyForEmail(email string) *Company {
	d := identity.EmailDomain(email)
	if d == "" {
		return nil
	}
	if c := a.byDomain[d]; c != nil {
		return c
	}
	for _, w := range a.wildcard {
		if strings.HasSuffix(d, w.suffix) {
			return w.company
		}
	}
	return nil
}

func (a *App) httpClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second}
}

// Interface guards.
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
