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
	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
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

	// ClockSkew is how far the IdP's clock may be from this server's when
	// the dates of a SAML response are checked (IssueInstant, NotBefore,
	// NotOnOrAfter). Default 3m, at most 1h. A response may also be up to
	// 90s plus whatever clock_skew exceeds 3m older than its IssueInstant.
	// Prefer fixing the clocks (NTP) to raising it.
	ClockSkew caddy.Duration `json:"clock_skew,omitempty"`

	// Encryption is "off" (default), "allowed" or "required": whether the
	// IdP encrypts assertions (Azure's SAML token encryption). With
	// "allowed" or "required" the provider's certificate is published in
	// its SP metadata and at /sso/saml/{label}/certificate, for upload to
	// Azure; encrypted assertions are decrypted. "required" also refuses
	// unencrypted ones; "allowed" accepts both, for the switch-over.
	Encryption string `json:"encryption,omitempty"`

	// SignRequests signs the AuthnRequests (and logout requests) sent to
	// the IdP, with RSA-SHA256, and publishes the signing certificate in the
	// SP metadata. Turn it on when the Azure app's "Require verification
	// certificates" is on, after uploading the provider's certificate there.
	SignRequests bool `json:"sign_requests,omitempty"`

	// SPCertFile and SPKeyFile are the PEM certificate and RSA private key
	// this provider decrypts and signs with. Optional: without them, a key
	// pair generated once per deployment and shared through the session
	// store is used. Only needed when encryption or sign_requests is on.
	SPCertFile string `json:"sp_cert_file,omitempty"`
	SPKeyFile  string `json:"sp_key_file,omitempty"`

	// SPPreviousKeyFiles are PEM RSA keys that still decrypt assertions
	// after sp_certificate changed, until the IdP encrypts to the new
	// certificate. They are never published or used for signing.
	SPPreviousKeyFiles []string `json:"sp_previous_key_files,omitempty"`

	// MaxResponseSize is the largest POST (the form carrying the base64
	// SAMLResponse) accepted at this provider's ACS, in bytes; a larger one
	// is refused with 413 before it is read further. Default 262144 (256
	// KiB), 16 KiB to 16 MiB; Azure's responses are a few KiB, more with
	// many group claims.
	MaxResponseSize int `json:"max_response_size,omitempty"`

	// Graph, when set, resolves Azure's group overage through Microsoft
	// Graph: a user in more than 150 groups gets a groups.link claim
	// instead of the groups, and is refused unless Graph application
	// credentials are configured here. The resolved groups are cached in
	// the session store for the session lifetime. Only for mapping groups.
	Graph *GraphConfig `json:"graph,omitempty"`

	// DefaultPath is where users land after an IdP-initiated login, or when
	// no return path was saved. Default "/".
	DefaultPath string `json:"default_path,omitempty"`

	// Claims renames the assertion attributes read for each value, for IdPs
	// whose admins renamed Azure's claims. Empty fields use Azure's claim
	// URIs.
	Claims identity.ClaimNames `json:"claims,omitzero"`
}

// GraphConfig are the Microsoft Graph application credentials of a
// provider, for resolving group overage. The Azure app registration needs
// the Microsoft Graph application permission GroupMember.Read.All (or
// User.Read.All), with admin consent.
type GraphConfig struct {
	// TenantID is the Azure tenant (directory) id. It must be the tenant
	// of the users signing in through this provider: an overage claim from
	// another tenant is refused.
	TenantID string `json:"tenant_id"`

	// ClientID is the app registration's application (client) id.
	ClientID string `json:"client_id"`

	// ClientSecret is the app registration's client secret. Write it as a
	// placeholder, such as {env.GRAPH_CLIENT_SECRET}, to keep it out of
	// the config.
	ClientSecret string `json:"client_secret"`

	// LoginURL is the Microsoft identity platform's base URL. Default
	// https://login.microsoftonline.com (other clouds: see Microsoft's
	// national cloud endpoints).
	LoginURL string `json:"login_url,omitempty"`

	// GraphURL is Microsoft Graph's base URL. Default
	// https://graph.microsoft.com.
	GraphURL string `json:"graph_url,omitempty"`

	// Timeout bounds the whole lookup of one user's groups, token included.
	// Default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// encryptionMode parses Encryption.
func (p *Provider) encryptionMode() (samlsp.EncryptionMode, error) {
	switch strings.ToLower(strings.TrimSpace(p.Encryption)) {
	case "", "off":
		return samlsp.EncryptionOff, nil
	case "allowed":
		return samlsp.EncryptionAllowed, nil
	case "required":
		return samlsp.EncryptionRequired, nil
	}
	return 0, fmt.Errorf("%q is not an encryption mode: want off, allowed or required", p.Encryption)
}

// needsCredentials reports whether the provider needs an SP key pair.
func (p *Provider) needsCredentials() bool {
	m, err := p.encryptionMode()
	return p.SignRequests || (err == nil && m != samlsp.EncryptionOff)
}

// maxResponseSize is the limit on the ACS POST body.
func (p *Provider) maxResponseSize() int {
	if p.MaxResponseSize > 0 {
		return p.MaxResponseSize
	}
	return samlsp.DefaultMaxResponseBytes
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
	entityIDs := map[string]string{}
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
			// Two providers with one SP entityID would accept each other's
			// assertions as far as the Audience goes.
			eid := p.EntityID
			if eid == "" && labelRE.MatchString(p.Label) {
				eid = strings.TrimSuffix(baseURL, "/") + "/sso/saml/" + p.Label
			}
			if prev, dup := entityIDs[eid]; dup && eid != "" {
				errs = append(errs, fmt.Errorf("%s.entity_id: %q is also the entity ID of %s; each provider needs its own", pat, eid, prev))
			} else {
				entityIDs[eid] = pat
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
	if p.ClockSkew < 0 || time.Duration(p.ClockSkew) > samlsp.MaxClockSkew {
		return fmt.Errorf("clock_skew: %v is out of range: use up to %v (default %v), and fix the clocks (NTP) rather than allowing more", time.Duration(p.ClockSkew), samlsp.MaxClockSkew, samlsp.DefaultClockSkew)
	}
	if _, err := p.encryptionMode(); err != nil {
		return fmt.Errorf("encryption: %w", err)
	}
	if (p.SPCertFile == "") != (p.SPKeyFile == "") {
		return errors.New("sp_certificate: give both the certificate file and the key file")
	}
	if len(p.SPPreviousKeyFiles) > 0 && p.SPCertFile == "" {
		return errors.New("sp_previous_key: previous keys go with an sp_certificate, the current key pair")
	}
	if p.SPCertFile != "" && !p.needsCredentials() {
		return errors.New("sp_certificate: the certificate is used only with encryption allowed or required, or sign_requests on; set one of them or remove it")
	}
	if g := p.Graph; g != nil {
		switch {
		case g.TenantID == "" || g.ClientID == "" || g.ClientSecret == "":
			return errors.New("graph: tenant_id, client_id and client_secret are all required (a placeholder such as {env.GRAPH_CLIENT_SECRET} is empty when its environment variable is not set)")
		case p.MappingMode == string(identity.MappingRoles):
			return errors.New("graph: resolves group overage, which only matters with mapping groups")
		case g.Timeout < 0:
			return errors.New("graph: timeout must be positive")
		}
	}
	if p.MaxResponseSize < 0 || (p.MaxResponseSize > 0 && p.MaxResponseSize < 16<<10) || p.MaxResponseSize > 16<<20 {
		return fmt.Errorf("max_response_size: %d bytes is out of range: use 16KiB to 16MiB (default 256KiB)", p.MaxResponseSize)
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
