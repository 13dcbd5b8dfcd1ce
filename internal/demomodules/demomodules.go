// Package demomodules wraps the demo parts — the local Azure-like IdP and
// the demo Engage upstream — as Caddy handlers, so that `go run ./cmd/caddy
// run` serves the whole sign-in flow from one process and one Caddyfile.
//
// They are compiled into cmd/caddy only. Production builds (xcaddy with the
// caddymodule package) do not contain them.
package demomodules

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/internal/demoapp"
	"github.com/engage-sso/engage-sso/internal/devidp"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

func init() {
	caddy.RegisterModule(DevIdP{})
	caddy.RegisterModule(DemoApp{})
	httpcaddyfile.RegisterHandlerDirective("engage_dev_idp", parseDevIdP)
	httpcaddyfile.RegisterHandlerDirective("engage_demo_app", parseDemoApp)
	httpcaddyfile.RegisterDirectiveOrder("engage_dev_idp", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("engage_demo_app", httpcaddyfile.Before, "respond")
}

// DevIdP serves the local development IdP (internal/devidp): an Azure-like
// SAML identity provider with demo users. Never use it in production: its
// users and passwords are printed on its login page.
type DevIdP struct {
	// BaseURL is the URL the IdP is reached at, such as
	// http://localhost:9001. Required.
	BaseURL string `json:"base_url,omitempty"`

	// TenantID is the fake Azure tenant id. Default: devidp.DemoTenantID.
	TenantID string `json:"tenant_id,omitempty"`

	// ServiceProviders are the SP metadata URLs it trusts, such as
	// http://localhost:8080/sso/saml/contoso/metadata.
	ServiceProviders []string `json:"service_providers,omitempty"`

	// EncryptFor are the entity IDs of the SPs whose assertions it
	// encrypts (Azure's token encryption, turned on for those apps).
	EncryptFor []string `json:"encrypt_for,omitempty"`

	srv *devidp.Server
}

// CaddyModule returns the Caddy module information.
func (DevIdP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.engage_dev_idp",
		New: func() caddy.Module { return new(DevIdP) },
	}
}

// Provision starts the IdP (generating its signing key).
func (m *DevIdP) Provision(ctx caddy.Context) error {
	srv, err := devidp.New(devidp.Config{
		BaseURL:          m.BaseURL,
		TenantID:         m.TenantID,
		ServiceProviders: m.ServiceProviders,
		EncryptFor:       m.EncryptFor,
		Logger:           ctx.Logger(),
	})
	if err != nil {
		return fmt.Errorf("engage_dev_idp: %w", err)
	}
	m.srv = srv
	ctx.Logger().Warn("serving the development IdP: demo users and passwords are public, never use it in production",
		zap.String("metadata_url", srv.MetadataURL()))
	return nil
}

// ServeHTTP serves the IdP; it never calls next.
func (m *DevIdP) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	m.srv.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile parses:
//
//	engage_dev_idp {
//		base_url         <url>
//		tenant_id        <guid>
//		service_provider <sp metadata url>...
//		encrypt_for      <sp entity id>...
//	}
func (m *DevIdP) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "base_url":
			if !d.AllArgs(&m.BaseURL) {
				return d.ArgErr()
			}
		case "tenant_id":
			if !d.AllArgs(&m.TenantID) {
				return d.ArgErr()
			}
		case "service_provider":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			m.ServiceProviders = append(m.ServiceProviders, args...)
		case "encrypt_for":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			m.EncryptFor = append(m.EncryptFor, args...)
		default:
			return d.Errf("unknown engage_dev_idp setting %q (want base_url, tenant_id, service_provider or encrypt_for)", d.Val())
		}
	}
	if m.BaseURL == "" {
		return d.Err("engage_dev_idp: base_url is required")
	}
	return nil
}

func parseDevIdP(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(DevIdP)
	return m, m.UnmarshalCaddyfile(h.Dispenser)
}

// DemoApp serves the demo Engage upstream (internal/demoapp): it verifies
// the identity token against engage-sso's JWKS and shows who is signed in,
// and implements the user hook under /hook/ (its base URL is
// {site}/hook), keeping the users in a JSON file.
type DemoApp struct {
	// JWKSURL is engage-sso's key set, such as
	// http://localhost:8080/sso/.well-known/jwks.json. Required.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Issuer is the expected `iss` of identity and hook tokens. Default
	// "engage-sso".
	Issuer string `json:"issuer,omitempty"`
	// Audience is the expected `aud` of identity tokens. Default "engage".
	Audience string `json:"audience,omitempty"`
	// HookAudience is the expected `aud` of the user hook's bearer tokens.
	// It must differ from Audience. Default "user-hook".
	HookAudience string `json:"hook_audience,omitempty"`
	// DataFile is the JSON file the demo keeps its users in, created at
	// the first change; {env.*} placeholders are expanded. Default: none,
	// the users are kept in memory and lost when Caddy stops or reloads.
	DataFile string `json:"data_file,omitempty"`

	h http.Handler
}

// CaddyModule returns the Caddy module information.
func (DemoApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.engage_demo_app",
		New: func() caddy.Module { return new(DemoApp) },
	}
}

// Provision builds the demo app and loads its users.
func (m *DemoApp) Provision(ctx caddy.Context) error {
	if m.JWKSURL == "" {
		return errors.New("engage_demo_app: jwks_url is required")
	}
	hookAud := m.HookAudience
	if hookAud == "" {
		hookAud = demoapp.DefaultHookAudience
	}
	aud := m.Audience
	if aud == "" {
		aud = engageauth.DefaultAudience
	}
	if hookAud == aud {
		return fmt.Errorf("engage_demo_app: hook_audience and audience are both %q; identity tokens would open the user hook", aud)
	}
	v, err := engageauth.NewVerifier(engageauth.Options{JWKSURL: m.JWKSURL, Issuer: m.Issuer, Audience: aud})
	if err != nil {
		return fmt.Errorf("engage_demo_app: %w", err)
	}
	hv, err := engageauth.NewVerifier(engageauth.Options{JWKSURL: m.JWKSURL, Issuer: m.Issuer, Audience: hookAud})
	if err != nil {
		return fmt.Errorf("engage_demo_app: %w", err)
	}
	dataFile := caddy.NewReplacer().ReplaceKnown(m.DataFile, "")
	h, err := demoapp.New(demoapp.Config{ // page requests are also in Caddy's access log
		Verifier:     v,
		HookVerifier: hv,
		DataFile:     dataFile,
		Logger:       ctx.Slogger(),
	})
	if err != nil {
		return fmt.Errorf("engage_demo_app: %w", err)
	}
	m.h = h
	return nil
}

// ServeHTTP serves the demo app; it never calls next.
func (m *DemoApp) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	m.h.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile parses:
//
//	engage_demo_app {
//		jwks_url      <url>
//		issuer        <iss>
//		audience      <aud>
//		hook_audience <aud>
//		data_file     <path>
//	}
func (m *DemoApp) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		name := d.Val()
		var dst *string
		switch name {
		case "jwks_url":
			dst = &m.JWKSURL
		case "issuer":
			dst = &m.Issuer
		case "audience":
			dst = &m.Audience
		case "hook_audience":
			dst = &m.HookAudience
		case "data_file":
			dst = &m.DataFile
		default:
			return d.Errf("unknown engage_demo_app setting %q (want jwks_url, issuer, audience, hook_audience or data_file)", name)
		}
		if seen[name] {
			return d.Errf("engage_demo_app: %s set twice", name)
		}
		seen[name] = true
		if !d.AllArgs(dst) {
			return d.ArgErr()
		}
	}
	if m.JWKSURL == "" {
		return d.Err("engage_demo_app: jwks_url is required")
	}
	return nil
}

func parseDemoApp(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(DemoApp)
	return m, m.UnmarshalCaddyfile(h.Dispenser)
}

// Interface guards.
var (
	_ caddyhttp.MiddlewareHandler = (*DevIdP)(nil)
	_ caddy.Provisioner           = (*DevIdP)(nil)
	_ caddyfile.Unmarshaler       = (*DevIdP)(nil)
	_ caddyhttp.MiddlewareHandler = (*DemoApp)(nil)
	_ caddy.Provisioner           = (*DemoApp)(nil)
	_ caddyfile.Unmarshaler       = (*DemoApp)(nil)
)
