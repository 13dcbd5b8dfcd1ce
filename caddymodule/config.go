package caddymodule

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/engage-sso/engage-sso/caddymodule/identity"
)

// labelRE is the syntax of provider labels and company ids: one lower-case
// word that is safe in URLs.
var labelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// Company is a tenant of Engage: its authorised email domains and the Azure
// AD providers its staff sign in with.
type Company struct {
	// ID identifies the company in identity tokens (the `company` claim). One
	// lower-case word: letters, digits and '-', 2 to 63 characters.
	ID string `json:"id"`

	// Name is the company's display name, shown on sign-in pages.
	Name string `json:"name,omitempty"`

	// Domains are the email domains whose users may sign in to this company.
	// Matching is case-insensitive and exact: "contoso.com" does not admit
	// "eu.contoso.com". Write "*.contoso.com" to admit every subdomain. A
	// domain belongs to one company only.
	Domains []string `json:"domains,omitempty"`

	// UserHookURL is the company's own user hook base URL, overriding the
	// global user_hook url (for companies whose accounts live in another
	// Engage deployment).
	UserHookURL string `json:"user_hook_url,omitempty"`

	// Providers are the company's Azure AD Enterprise Apps (SAML identity
	// providers). After the email step, users of a company with one provider
	// go straight to it; with several, they choose. A provider's shortcut
	// URL /sso/login/{label} skips both steps.
	Providers []*Provider `json:"providers,omitempty"`
}

// Provider is one Azure AD Enterprise App (or any SAML 2.0 identity
// provider) of a company.
type Provider struct {
	// Label identifies the provider in URLs (/sso/login/{label},
	// /sso/saml/{label}/acs) and in the `provider` claim. One lower-case
	// word: letters, digits and '-', 2 to 63 characters, unique across the
	// deployment.
	Label string `json:"label"`

	// MetadataFile is the path of the IdP's Federation Metadata XML (the
	// file Azure offers as "Federation Metadata XML"). Read and checked at
	// start-up: a broken file stops Caddy with an explanation. Exactly one of
	// metadata_file and metadata_url is required.
	MetadataFile string `json:"metadata_file,omitempty"`

	// MetadataURL is the IdP's metadata URL (Azure's "App Federation
	// Metadata Url"). It is fetched in the background at start-up, retried
	// until it succeeds and refreshed every metadata_refresh; until it has
	// loaded, sign-in through this provider answers 503.
	MetadataURL string `json:"metadata_url,omitempty"`

	// MetadataRefresh is how often metadata_url is fetched again, so that
	// Azure's certificate rollover is picked up. Default 12h.
	MetadataRefresh caddy.Duration `json:"metadata_refresh,omitempty"`

	// EntityID is the SP entity ID that Azure calls "Identifier (Entity ID)"
	// and AD FS the Relying Party Trust Identifier. Default
	// {base_url}/sso/saml/{label}.
	EntityID string `json:"entity_id,omitempty"`

	// MappingMode is "groups" (default) to map Azure group object IDs from
	// the groups claim, or "roles" to map Azure app role values from the
	// role claim.
	MappingMode string `json:"mapping_mode,omitempty"`

	// Roles maps each Engage role ("agent", "supervisor",
	// "account_holder") to the group object IDs or app role values that
	// grant it. A user gets the highest role any of their IDs maps to; a
	// user with none is refused. At least one ID is required.
	Roles map[string][]string `json:"roles,omitempty"`

	// JIT, when true (the default), creates an Engage account, through the
	// user hook, for a user who has none at their first sign-in, with the
	// role resolved from their groups or app roles. When false, such a
	// user is refused: an account holder or supervisor must create the
	// account first, or SCIM provisioning must. Without a user hook it has
	// no effect.
	JIT *bool `json:"jit,omitempty"`

	// AllowIdPInitiated, when true (the default), accepts logins started at
	// the IdP (Azure My Apps) that answer no request of ours.
	AllowIdPInitiated *bool `json:"allow_idp_initiated,omitempty"`

	// AllowSHA1, when true, accepts responses signed with SHA-1 based
	// algorithms (older Azure apps). Off by default; prefer switching the
	// Azure app's signing algorithm to SHA-256. A warning is logged at
	// start-up while it is on.
	AllowSHA1 bool `json:"allow_sha1,omitempty"`

	// DefaultPath is where users land after an IdP-initiated login, or when
	// no return path was saved. Default "/".
	DefaultPath string `json:"default_path,omitempty"`

	// Claims renames the assertion attributes read for each value, for IdPs
	// whose admins renamed Azure's claims. Empty fields use Azure's claim
	// URIs.
	Claims identity.ClaimNames `json:"claims,omitzero"`
}

// jit reports whether JIT provisioning is on.
func (p *Provider) jit() bool { return p.JIT == nil || *p.JIT }

// idpInitiated reports whether IdP-initiated login is allowed.
func (p *Provider) idpInitiated() bool { return p.AllowIdPInitiated == nil || *p.AllowIdPInitiated }

// mapping parses the provider's role mapping.
func (p *Provider) mapping() (identity.RoleMapping, identity.MappingMode, error) {
	mode := identity.MappingGroups
	if p.MappingMode != "" {
		m, err := identity.ParseMappingMode(p.MappingMode)
		if err != nil {
			return nil, "", err
		}
		mode = m
	}
	rm := identity.RoleMapping{}
	for name, ids := range p.Roles {
		r, err := identity.ParseRole(name)
		if err != nil {
			return nil, "", err
		}
		for _, id := range ids {
			rm[r] = append(rm[r], identity.SplitIDs(id)...)
		}
	}
	if err := rm.Validate(); err != nil {
		return nil, "", err
	}
	return rm, mode, nil
}

// validateConfig checks the companies and providers: syntax of every value
// and uniqueness of company ids, domains and labels across the deployment.
// It does no I/O. Errors name the offending field by its JSON path.
func validateConfig(baseURL string, companies []*Company) error {
	if len(companies) > 0 {
		if err := checkBaseURL(baseURL); err != nil {
			return fmt.Errorf("base_url: %w", err)
		}
	}
	companyIDs := map[string]string{}
	domains := map[string]string{}
	labels := map[string]string{}
	var errs []error
	for i, c := range companies {
		at := fmt.Sprintf("companies[%d]", i)
		if c == nil {
			errs = append(errs, fmt.Errorf("%s: empty company", at))
			continue
		}
		if !labelRE.MatchString(c.ID) {
			errs = append(errs, fmt.Errorf("%s.id: invalid company id %q: use 2-63 lower-case letters, digits and '-'", at, c.ID))
		} else if prev, dup := companyIDs[c.ID]; dup {
			errs = append(errs, fmt.Errorf("%s.id: company %q is also defined at %s", at, c.ID, prev))
		} else {
			companyIDs[c.ID] = at
		}
		if len(c.Domains) == 0 {
			errs = append(errs, fmt.Errorf("%s.domains: company %q has no authorised domain", at, c.ID))
		}
		if c.UserHookURL != "" {
			if err := checkHookURL(c.UserHookURL); err != nil {
				errs = append(errs, fmt.Errorf("%s.user_hook_url: %w", at, err))
			}
		}
		for j, d := range c.Domains {
			dat := fmt.Sprintf("%s.domains[%d]", at, j)
			if err := identity.ValidateDomain(d); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", dat, err))
				continue
			}
			key := strings.ToLower(strings.TrimSpace(d))
			if prev, dup := domains[key]; dup {
				errs = append(errs, fmt.Errorf("%s: domain %q is already authorised at %s; a domain belongs to one company", dat, d, prev))
			} else {
				domains[key] = dat
			}
		}
		if len(c.Providers) == 0 {
			errs = append(errs, fmt.Errorf("%s.providers: company %q has no provider", at, c.ID))
		}
		for j, p := range c.Providers {
			pat := fmt.Sprintf("%s.providers[%d]", at, j)
			if p == nil {
				errs = append(errs, fmt.Errorf("%s: empty provider", pat))
				continue
			}
			if !labelRE.MatchString(p.Label) {
				errs = append(errs, fmt.Errorf("%s.label: invalid label %q: use 2-63 lower-case letters, digits and '-'", pat, p.Label))
			} else if prev, dup := labels[p.Label]; dup {
				errs = append(errs, fmt.Errorf("%s.label: label %q is already used at %s; labels are unique across the deployment", pat, p.Label, prev))
			} else {
				labels[p.Label] = pat
			}
			if err := validateProvider(p); err != nil {
				errs = append(errs, fmt.Errorf("%s (%s): %w", pat, p.Label, err))
			}
		}
	}
	return errors.Join(errs...)
}

func validateProvider(p *Provider) error {
	switch {
	case p.MetadataFile == "" && p.MetadataURL == "":
		return errors.New("metadata: set metadata_file or metadata_url (the IdP's Federation Metadata XML)")
	case p.MetadataFile != "" && p.MetadataURL != "":
		return errors.New("metadata: set only one of metadata_file and metadata_url")
	}
	if p.MetadataURL != "" {
		u, err := url.Parse(p.MetadataURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("metadata_url: %q is not an https URL", p.MetadataURL)
		}
		if u.Scheme == "http" && !isLoopback(u.Hostname()) {
			return fmt.Errorf("metadata_url: %q must use https (plain http is allowed only for localhost)", p.MetadataURL)
		}
	}
	if p.MetadataRefresh < 0 || (p.MetadataRefresh > 0 && time.Duration(p.MetadataRefresh) < time.Minute) {
		return fmt.Errorf("metadata_refresh: %v is too short; use at least 1m", time.Duration(p.MetadataRefresh))
	}
	if p.EntityID != "" {
		if u, err := url.Parse(p.EntityID); err != nil || u.Scheme == "" {
			return fmt.Errorf("entity_id: %q is not an absolute URI", p.EntityID)
		}
	}
	// The mode is checked on its own so that its error names mapping_mode,
	// not roles (p.mapping parses both).
	if p.MappingMode != "" {
		if _, err := identity.ParseMappingMode(p.MappingMode); err != nil {
			return fmt.Errorf("mapping_mode: %w", err)
		}
	}
	if _, _, err := p.mapping(); err != nil {
		return fmt.Errorf("roles: %w", err)
	}
	if p.DefaultPath != "" && safeReturnPath(p.DefaultPath) != p.DefaultPath {
		return fmt.Errorf("default_path: %q must be a local path starting with '/'", p.DefaultPath)
	}
	return nil
}

func checkBaseURL(s string) error {
	if s == "" {
		return errors.New("required: the public URL of the site, such as https://engage.example.com")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must be a scheme and host only, such as https://engage.example.com", s)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%q must use https: SAML responses and session cookies must not cross the network in clear text (plain http is allowed only for localhost)", s)
	}
	return nil
}

// isLoopback reports whether host is localhost or a loopback address: the
// only hosts where plain http is accepted (development and the demo).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// safeReturnPath returns p if it is a local path on this site, and "" if it
// could lead elsewhere (an absolute URL, "//host", "/\host", control
// characters) or into the sign-in endpoints themselves.
func safeReturnPath(p string) string {
	if p == "" || len(p) > 2048 || p[0] != '/' {
		return ""
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return ""
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	// Browsers resolve dot segments (also %2e-encoded ones) before they
	// request the path, so "/a/../sso/logout" leads to /sso/logout: check the
	// cleaned path too.
	for _, up := range []string{u.Path, path.Clean(u.Path)} {
		if up == "/sso" || strings.HasPrefix(up, "/sso/") {
			return ""
		}
	}
	return p
}
