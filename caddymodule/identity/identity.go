// Package identity turns the claims of a verified SAML assertion into an
// Engage identity: it picks the email, checks it against the company's
// authorised domains and resolves the user's highest role from Azure group
// object IDs or app roles.
//
// Everything here is a pure function of its inputs: no I/O, no clock, no
// Caddy types. The SAML layer verifies the assertion; this package decides
// who the user is and whether the company lets them in.
package identity

import (
	"errors"
	"fmt"
	"strings"
)

// Role is an Engage role. Roles are ordered: a user with several mapped roles
// gets the highest one.
type Role int

// The roles, lowest first. RoleNone means no role is mapped.
const (
	RoleNone Role = iota
	RoleAgent
	RoleSupervisor
	RoleAccountHolder
)

// Roles lists the assignable roles from lowest to highest.
var Roles = [...]Role{RoleAgent, RoleSupervisor, RoleAccountHolder}

// String returns the role's wire name, as used in configuration and in the
// identity token: "agent", "supervisor" or "account_holder"; "" for RoleNone.
func (r Role) String() string {
	switch r {
	case RoleAgent:
		return "agent"
	case RoleSupervisor:
		return "supervisor"
	case RoleAccountHolder:
		return "account_holder"
	}
	return ""
}

// Title returns the role's human name, for pages and logs.
func (r Role) Title() string {
	switch r {
	case RoleAgent:
		return "Agent"
	case RoleSupervisor:
		return "Supervisor"
	case RoleAccountHolder:
		return "Account Holder"
	}
	return "No role"
}

// ParseRole parses a role's wire name. It accepts the names case-insensitively
// and with '-' or ' ' in place of '_' ("Account Holder", "account-holder").
func ParseRole(s string) (Role, error) {
	norm := strings.ToLower(strings.TrimSpace(s))
	norm = strings.NewReplacer("-", "_", " ", "_").Replace(norm)
	for _, r := range Roles {
		if norm == r.String() {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("unknown role %q: want agent, supervisor or account_holder", s)
}

// MappingMode says which claim carries the values that map to roles.
type MappingMode string

// The mapping modes.
const (
	// MappingGroups maps Azure group object IDs from the groups claim.
	MappingGroups MappingMode = "groups"
	// MappingRoles maps Azure app role values from the role claim.
	MappingRoles MappingMode = "roles"
)

// ParseMappingMode parses "groups" or "roles" (case-insensitive).
func ParseMappingMode(s string) (MappingMode, error) {
	switch m := MappingMode(strings.ToLower(strings.TrimSpace(s))); m {
	case MappingGroups, MappingRoles:
		return m, nil
	}
	return "", fmt.Errorf("unknown mapping mode %q: want groups or roles", s)
}

// SplitIDs splits a list of Azure IDs as admins paste them: separated by '|'
// (as in Azure-style admin UIs), ',' or line breaks and tabs. Spaces separate
// items only between group object IDs (GUIDs): anything else with spaces in
// it is one value, such as a group display name ("Engage Agents") when Azure
// is set to send names. Items are trimmed, empty ones dropped; order is kept
// and duplicates removed.
func SplitIDs(s string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(f string) {
		if f = strings.Join(strings.Fields(f), " "); f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, item := range strings.FieldsFunc(s, func(r rune) bool {
		return r == '|' || r == ',' || r == '\t' || r == '\n' || r == '\r'
	}) {
		words := strings.Fields(item)
		allGUIDs := len(words) > 1
		for _, w := range words {
			allGUIDs = allGUIDs && IsGUID(w)
		}
		if allGUIDs {
			for _, w := range words {
				add(w)
			}
			continue
		}
		add(item)
	}
	return out
}

// IsGUID reports whether s is a GUID written 8-4-4-4-12 in hex digits,
// such as an Azure object or tenant id.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F'):
			return false
		}
	}
	return true
}

// RoleMapping maps each role to the Azure IDs (group object IDs or app role
// values) that grant it. An ID may appear under several roles; the highest
// wins.
type RoleMapping map[Role][]string

// Highest returns the highest role granted by any of values. Group object IDs
// are GUIDs and compared case-insensitively; app role values are compared
// case-insensitively too, as Azure treats them.
func (m RoleMapping) Highest(values []string) Role {
	best := RoleNone
	for i := len(Roles) - 1; i >= 0 && best == RoleNone; i-- {
		r := Roles[i]
		for _, want := range m[r] {
			if containsFold(values, want) {
				best = r
				break
			}
		}
	}
	return best
}

func containsFold(values []string, want string) bool {
	for _, v := range values {
		if strings.EqualFold(strings.TrimSpace(v), want) {
			return true
		}
	}
	return false
}

// Validate reports a mapping that cannot grant any role or names an unknown
// role.
func (m RoleMapping) Validate() error {
	n := 0
	for r, ids := range m {
		if r <= RoleNone || r > RoleAccountHolder {
			return fmt.Errorf("role mapping: unknown role %d", int(r))
		}
		for _, id := range ids {
			if strings.TrimSpace(id) == "" {
				return fmt.Errorf("role mapping: empty ID for role %s", r)
			}
		}
		n += len(ids)
	}
	if n == 0 {
		return errors.New("role mapping: no IDs mapped to any role; map at least one of agent, supervisor, account_holder")
	}
	return nil
}
