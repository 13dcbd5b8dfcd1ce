package identity

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// Azure AD's default claim names (attribute Name URIs in the assertion).
const (
	ClaimEmail       = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	ClaimUPN         = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	ClaimGivenName   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	ClaimSurname     = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	ClaimDisplayName = "http://schemas.microsoft.com/identity/claims/displayname"
	ClaimObjectID    = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	ClaimTenantID    = "http://schemas.microsoft.com/identity/claims/tenantid"
	ClaimGroups      = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	ClaimRoles       = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	ClaimGroupsLink  = "http://schemas.microsoft.com/claims/groups.link"
)

// ClaimNames says which assertion attribute carries each value. Azure lets
// admins rename claims, so each is configurable; empty fields take Azure's
// defaults (see WithDefaults).
type ClaimNames struct {
	Email       string `json:"email,omitempty"`
	UPN         string `json:"upn,omitempty"`
	GivenName   string `json:"given_name,omitempty"`
	Surname     string `json:"surname,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
	ObjectID    string `json:"object_id,omitempty"`
	TenantID    string `json:"tenant_id,omitempty"`
	Groups      string `json:"groups,omitempty"`
	Roles       string `json:"roles,omitempty"`
	GroupsLink  string `json:"groups_link,omitempty"`
}

// WithDefaults returns c with every empty name set to Azure's default.
func (c ClaimNames) WithDefaults() ClaimNames {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&c.Email, ClaimEmail)
	def(&c.UPN, ClaimUPN)
	def(&c.GivenName, ClaimGivenName)
	def(&c.Surname, ClaimSurname)
	def(&c.DisplayName, ClaimDisplayName)
	def(&c.ObjectID, ClaimObjectID)
	def(&c.TenantID, ClaimTenantID)
	def(&c.Groups, ClaimGroups)
	def(&c.Roles, ClaimRoles)
	def(&c.GroupsLink, ClaimGroupsLink)
	return c
}

// Claims is what a verified assertion says about the user.
type Claims struct {
	// NameID is the assertion's subject NameID value.
	NameID string
	// Attributes maps attribute names (claim URIs) to their values.
	Attributes map[string][]string
}

// First returns the first non-blank value of the attribute name, trimmed,
// or "".
func (c Claims) First(name string) string {
	for _, v := range c.Attributes[name] {
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
	}
	return ""
}

// Policy is what a company and its provider decide about who may sign in and
// with which role.
type Policy struct {
	// Company is the company's id.
	Company string
	// Provider is the provider's label.
	Provider string
	// Domains are the company's authorised email domains (see DomainAuthorised).
	Domains []string
	// Mode says which claim is mapped to roles.
	Mode MappingMode
	// Mapping maps roles to group object IDs or app role values.
	Mapping RoleMapping
	// Claims names the assertion attributes; empty names take Azure's defaults.
	Claims ClaimNames
}

// Identity is the resolved user.
type Identity struct {
	// UserID is the user's id in the Engage directory. Resolve leaves it
	// empty; the directory lookup fills it in.
	UserID      string
	Email       string
	GivenName   string
	FamilyName  string
	DisplayName string
	Role        Role
	Company     string
	Provider    string
	// ObjectID is the user's Azure object id (stable across email changes).
	ObjectID string
	// TenantID is the Azure tenant id.
	TenantID string
}

// Name returns the display name, or "given family", or the email.
func (id Identity) Name() string {
	if id.DisplayName != "" {
		return id.DisplayName
	}
	if n := strings.TrimSpace(id.GivenName + " " + id.FamilyName); n != "" {
		return n
	}
	return id.Email
}

// Reason says why Resolve denied a user. Each has its own page.
type Reason string

// The reasons Resolve denies a user.
const (
	ReasonNoEmail         Reason = "no_email"
	ReasonBadEmail        Reason = "invalid_email"
	ReasonDomain          Reason = "domain_not_authorised"
	ReasonNoRole          Reason = "no_role"
	ReasonGroupOverage    Reason = "group_overage"
	ReasonMisconfigured   Reason = "provider_misconfigured"
	ReasonUnknownProvider Reason = "unknown_provider"
)

// DeniedError is returned by Resolve when the user may not sign in.
type DeniedError struct {
	Reason Reason
	// Email is the email the decision was about, when known.
	Email string
	// Detail is for the log, never for the browser.
	Detail string
}

func (e *DeniedError) Error() string {
	msg := "identity: access denied: " + string(e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// IsDenied reports whether err is a DeniedError and returns it.
func IsDenied(err error) (*DeniedError, bool) {
	var d *DeniedError
	ok := errors.As(err, &d)
	return d, ok
}

// Resolve turns verified claims into an identity under the policy p.
//
// The email comes from the email claim, falling back to the UPN (name claim)
// and then the NameID, taking the first that is a valid address. Its domain
// must be one of p.Domains. The role is the highest one granted by the
// groups claim (MappingGroups) or the role claim (MappingRoles). When Azure
// replaced the groups claim by a groups.link (the user is in too many
// groups), the user is denied with ReasonGroupOverage rather than resolved
// from an incomplete list.
func Resolve(c Claims, p Policy) (Identity, error) {
	names := p.Claims.WithDefaults()
	email, err := pickEmail(c, names)
	if err != nil {
		return Identity{}, err
	}
	if !DomainAuthorised(email, p.Domains) {
		return Identity{}, &DeniedError{Reason: ReasonDomain, Email: email,
			Detail: fmt.Sprintf("domain of %q is not authorised for company %q", email, p.Company)}
	}
	var values []string
	switch p.Mode {
	case MappingGroups, "":
		values = c.Attributes[names.Groups]
		if len(values) == 0 && c.First(names.GroupsLink) != "" {
			return Identity{}, &DeniedError{Reason: ReasonGroupOverage, Email: email,
				Detail: "assertion has a groups.link instead of groups (user is in more than 150 groups)"}
		}
	case MappingRoles:
		values = c.Attributes[names.Roles]
	default:
		return Identity{}, &DeniedError{Reason: ReasonMisconfigured, Email: email,
			Detail: fmt.Sprintf("unknown mapping mode %q", p.Mode)}
	}
	role := p.Mapping.Highest(values)
	if role == RoleNone {
		return Identity{}, &DeniedError{Reason: ReasonNoRole, Email: email,
			Detail: fmt.Sprintf("none of the %d %s values is mapped to a role", len(values), modeName(p.Mode))}
	}
	return Identity{
		Email:       email,
		GivenName:   c.First(names.GivenName),
		FamilyName:  c.First(names.Surname),
		DisplayName: c.First(names.DisplayName),
		Role:        role,
		Company:     p.Company,
		Provider:    p.Provider,
		ObjectID:    c.First(names.ObjectID),
		TenantID:    c.First(names.TenantID),
	}, nil
}

func modeName(m MappingMode) string {
	if m == "" {
		return string(MappingGroups)
	}
	return string(m)
}

// pickEmail returns the first of the email claim, the UPN and the NameID that
// is a plain valid address, lower-cased.
func pickEmail(c Claims, names ClaimNames) (string, error) {
	candidates := []string{c.First(names.Email), c.First(names.UPN), strings.TrimSpace(c.NameID)}
	var firstBad string
	for _, cand := range candidates {
		if cand == "" {
			continue
		}
		if e, ok := NormaliseEmail(cand); ok {
			return e, nil
		}
		if firstBad == "" {
			firstBad = cand
		}
	}
	if firstBad != "" {
		return "", &DeniedError{Reason: ReasonBadEmail, Detail: fmt.Sprintf("no valid email address in the assertion (first candidate %q)", firstBad)}
	}
	return "", &DeniedError{Reason: ReasonNoEmail, Detail: "assertion has no email, UPN or NameID"}
}

// NormaliseEmail lower-cases and checks a bare email address ("a@b.c", no
// display name, no angle brackets, no white space or control characters,
// exactly one '@').
func NormaliseEmail(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 254 || strings.Count(s, "@") != 1 {
		return "", false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '<' || r == '>' || r == '"' || r == ',' || r == ';' {
			return "", false
		}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", false
	}
	local, domain, _ := strings.Cut(s, "@")
	if local == "" || !validDomain(domain) {
		return "", false
	}
	return strings.ToLower(s), true
}

func validDomain(d string) bool {
	if len(d) > 253 || !strings.Contains(d, ".") {
		return false
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// EmailDomain returns the lower-cased domain of an email address, or "".
func EmailDomain(email string) string {
	i := strings.LastIndexByte(email, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(email[i+1:])
}

// DomainAuthorised reports whether the email's domain is one of domains.
// Matching is case-insensitive and exact; an entry "*.example.com" matches
// any subdomain of example.com (but not example.com itself), and only when
// written so explicitly.
func DomainAuthorised(email string, domains []string) bool {
	d := EmailDomain(email)
	if d == "" {
		return false
	}
	for _, want := range domains {
		want = strings.ToLower(strings.TrimSpace(want))
		if suffix, ok := strings.CutPrefix(want, "*."); ok {
			if strings.HasSuffix(d, "."+suffix) {
				return true
			}
			continue
		}
		if d == want {
			return true
		}
	}
	return false
}

// ValidateDomain checks an authorised-domain entry: a DNS name, or
// "*." followed by one.
func ValidateDomain(s string) error {
	d := strings.ToLower(strings.TrimSpace(s))
	d = strings.TrimPrefix(d, "*.")
	if !validDomain(d) {
		return fmt.Errorf("invalid authorised domain %q: want a domain name such as example.com (or *.example.com for all subdomains)", s)
	}
	return nil
}
