package identity

import (
	"errors"
	"reflect"
	"testing"
)

const (
	gAgents  = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e01"
	gSupers  = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e02"
	gOwners  = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e03"
	gOwners2 = "7d0e1c2b-0000-4000-8000-000000000003"
	gOther   = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e09"
)

func testMapping() RoleMapping {
	return RoleMapping{
		RoleAgent:         SplitIDs(gAgents),
		RoleSupervisor:    SplitIDs(gSupers),
		RoleAccountHolder: SplitIDs(gOwners + "|" + gOwners2),
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		in   string
		want Role
		ok   bool
	}{
		{"agent", RoleAgent, true},
		{"Supervisor", RoleSupervisor, true},
		{"account_holder", RoleAccountHolder, true},
		{"Account Holder", RoleAccountHolder, true},
		{"account-holder", RoleAccountHolder, true},
		{" agent ", RoleAgent, true},
		{"admin", RoleNone, false},
		{"", RoleNone, false},
		{"accountholder", RoleNone, false},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseRole(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRoleStringsRoundTrip(t *testing.T) {
	for _, r := range Roles {
		got, err := ParseRole(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRole(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
		if r.Title() == "" || r.Title() == RoleNone.Title() {
			t.Errorf("%v.Title() = %q", r, r.Title())
		}
	}
	if RoleNone.String() != "" {
		t.Errorf("RoleNone.String() = %q; want empty", RoleNone.String())
	}
	if !(RoleAgent < RoleSupervisor && RoleSupervisor < RoleAccountHolder) {
		t.Error("roles are not ordered agent < supervisor < account_holder")
	}
}

func TestParseMappingMode(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want MappingMode
		ok   bool
	}{
		{"groups", MappingGroups, true},
		{"ROLES", MappingRoles, true},
		{"group", "", false},
		{"", "", false},
	} {
		got, err := ParseMappingMode(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseMappingMode(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSplitIDs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  ", nil},
		{"a", []string{"a"}},
		{"a|b", []string{"a", "b"}},
		{" a | b |", []string{"a", "b"}},
		{"a||b", []string{"a", "b"}},
		{"a,b\tc\nd", []string{"a", "b", "c", "d"}},
		// Spaces separate object IDs, pasted as a list...
		{"2f1c0b8e-6a52-4c3e-9d7f-1b2a3c4d5e01 2f1c0b8e-6a52-4c3e-9d7f-1b2a3c4d5e02",
			[]string{"2f1c0b8e-6a52-4c3e-9d7f-1b2a3c4d5e01", "2f1c0b8e-6a52-4c3e-9d7f-1b2a3c4d5e02"}},
		// ...but not the words of a group display name.
		{"Engage Agents|Engage  Supervisors ", []string{"Engage Agents", "Engage Supervisors"}},
		{"Engage Agents 2f1c0b8e-6a52-4c3e-9d7f-1b2a3c4d5e01", []string{"Engage Agents 2f1c0b8e-6a52-4c3e-9d7f-1b2a3c4d5e01"}},
		{"a|b|a", []string{"a", "b"}},
		{"|||", nil},
	}
	for _, tt := range tests {
		if got := SplitIDs(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitIDs(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestHighest(t *testing.T) {
	m := testMapping()
	tests := []struct {
		name   string
		values []string
		want   Role
	}{
		{"none", nil, RoleNone},
		{"unmapped only", []string{gOther}, RoleNone},
		{"agent", []string{gAgents}, RoleAgent},
		{"supervisor", []string{gSupers}, RoleSupervisor},
		{"account holder", []string{gOwners}, RoleAccountHolder},
		{"second id of a | list", []string{gOwners2}, RoleAccountHolder},
		{"agent and supervisor", []string{gAgents, gSupers}, RoleSupervisor},
		{"order does not matter", []string{gSupers, gOther, gAgents}, RoleSupervisor},
		{"all three", []string{gAgents, gOwners, gSupers}, RoleAccountHolder},
		{"upper-case GUID", []string{"0C5A1F6E-3B2D-4E8F-9A71-5D6C7B8A9E02"}, RoleSupervisor},
		{"padded value", []string{" " + gAgents + " "}, RoleAgent},
		{"prefix is not a match", []string{gAgents[:10]}, RoleNone},
		{"empty value", []string{""}, RoleNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Highest(tt.values); got != tt.want {
				t.Errorf("Highest(%q) = %v; want %v", tt.values, got, tt.want)
			}
		})
	}
}

func TestHighestSameIDUnderTwoRoles(t *testing.T) {
	m := RoleMapping{RoleAgent: {"x"}, RoleAccountHolder: {"x"}}
	if got := m.Highest([]string{"x"}); got != RoleAccountHolder {
		t.Errorf("Highest = %v; want account_holder", got)
	}
}

func TestRoleMappingValidate(t *testing.T) {
	if err := testMapping().Validate(); err != nil {
		t.Errorf("Validate() = %v; want nil", err)
	}
	for name, m := range map[string]RoleMapping{
		"empty":        {},
		"nil ids":      {RoleAgent: nil},
		"blank id":     {RoleAgent: {" "}},
		"unknown role": {Role(9): {"x"}},
		"none role":    {RoleNone: {"x"}},
	} {
		if err := m.Validate(); err == nil {
			t.Errorf("Validate(%s) = nil; want error", name)
		}
	}
}

func TestDomainAuthorised(t *testing.T) {
	domains := []string{"contoso.com", "Contoso.CO.UK", "*.branch.example"}
	tests := []struct {
		email string
		want  bool
	}{
		{"a@contoso.com", true},
		{"a@CONTOSO.COM", true},
		{"a@contoso.co.uk", true},
		{"a@sub.contoso.com", false},
		{"a@contoso.com.evil.com", false},
		{"a@evilcontoso.com", false},
		{"a@fabrikam.com", false},
		{"a@x.branch.example", true},
		{"a@y.x.branch.example", true},
		{"a@branch.example", false},
		{"contoso.com", false},
		{"", false},
		{"a@", false},
	}
	for _, tt := range tests {
		if got := DomainAuthorised(tt.email, domains); got != tt.want {
			t.Errorf("DomainAuthorised(%q) = %v; want %v", tt.email, got, tt.want)
		}
	}
	if DomainAuthorised("a@contoso.com", nil) {
		t.Error("DomainAuthorised with no domains = true; want false")
	}
}

func TestValidateDomain(t *testing.T) {
	for _, ok := range []string{"contoso.com", "CONTOSO.com", "*.contoso.com", "a-b.co.uk"} {
		if err := ValidateDomain(ok); err != nil {
			t.Errorf("ValidateDomain(%q) = %v; want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "com", "*", "*.com", "contoso..com", "-a.com", "a b.com", "a@b.com", "*contoso.com", "http://contoso.com"} {
		if err := ValidateDomain(bad); err == nil {
			t.Errorf("ValidateDomain(%q) = nil; want error", bad)
		}
	}
}

func TestNormaliseEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Adele.Vance@Contoso.com", "adele.vance@contoso.com", true},
		{" a@b.co ", "a@b.co", true},
		{"a+tag@b.co", "a+tag@b.co", true},
		{"Adele <a@b.co>", "", false},
		{"a@b", "", false},
		{"a@@b.co", "", false},
		{"a@b.co@c.co", "", false},
		{"a b@c.co", "", false},
		{"a@b.co\n", "a@b.co", true},
		{"a@b.co\x00x", "", false},
		{"@b.co", "", false},
		{"a@-b.co", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		got, ok := NormaliseEmail(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormaliseEmail(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func attrs(kv ...any) map[string][]string {
	m := map[string][]string{}
	for i := 0; i < len(kv); i += 2 {
		switch v := kv[i+1].(type) {
		case string:
			m[kv[i].(string)] = []string{v}
		case []string:
			m[kv[i].(string)] = v
		}
	}
	return m
}

func TestResolve(t *testing.T) {
	groupsPolicy := Policy{
		Company:  "contoso",
		Provider: "contoso-azure",
		Domains:  []string{"contoso.com"},
		Mode:     MappingGroups,
		Mapping:  testMapping(),
	}
	rolesPolicy := groupsPolicy
	rolesPolicy.Mode = MappingRoles
	rolesPolicy.Mapping = RoleMapping{
		RoleAgent:         {"Engage.Agent"},
		RoleSupervisor:    {"Engage.Supervisor"},
		RoleAccountHolder: {"Engage.AccountHolder"},
	}
	renamed := groupsPolicy
	renamed.Claims = ClaimNames{Email: "mail", Groups: "memberOf"}

	full := attrs(
		ClaimTenantID, "tid-1",
		ClaimObjectID, "oid-1",
		ClaimDisplayName, "Megan Bowen",
		ClaimGroups, []string{gOther, gSupers},
		ClaimRoles, []string{"Engage.Agent"},
		ClaimGivenName, "Megan",
		ClaimSurname, "Bowen",
		ClaimEmail, "Megan.Bowen@contoso.com",
		ClaimUPN, "megan.bowen@contoso.onmicrosoft.com",
	)

	tests := []struct {
		name   string
		claims Claims
		policy Policy
		want   Identity
		reason Reason
	}{
		{
			name:   "groups mode, full Azure claims",
			claims: Claims{NameID: "megan.bowen@contoso.com", Attributes: full},
			policy: groupsPolicy,
			want: Identity{Email: "megan.bowen@contoso.com", GivenName: "Megan", FamilyName: "Bowen",
				DisplayName: "Megan Bowen", Role: RoleSupervisor, Company: "contoso", Provider: "contoso-azure",
				ObjectID: "oid-1", TenantID: "tid-1"},
		},
		{
			name:   "roles mode uses the role claim, not groups",
			claims: Claims{Attributes: full},
			policy: rolesPolicy,
			want: Identity{Email: "megan.bowen@contoso.com", GivenName: "Megan", FamilyName: "Bowen",
				DisplayName: "Megan Bowen", Role: RoleAgent, Company: "contoso", Provider: "contoso-azure",
				ObjectID: "oid-1", TenantID: "tid-1"},
		},
		{
			name:   "roles mode, two roles, highest wins",
			claims: Claims{Attributes: attrs(ClaimEmail, "x@contoso.com", ClaimRoles, []string{"Engage.AccountHolder", "Engage.Agent"})},
			policy: rolesPolicy,
			want:   Identity{Email: "x@contoso.com", Role: RoleAccountHolder, Company: "contoso", Provider: "contoso-azure"},
		},
		{
			name:   "email falls back to UPN",
			claims: Claims{NameID: "nameid@contoso.com", Attributes: attrs(ClaimUPN, "UPN@Contoso.com", ClaimGroups, gAgents)},
			policy: groupsPolicy,
			want:   Identity{Email: "upn@contoso.com", Role: RoleAgent, Company: "contoso", Provider: "contoso-azure"},
		},
		{
			name:   "email falls back to NameID",
			claims: Claims{NameID: "NameID@contoso.com", Attributes: attrs(ClaimGroups, gAgents)},
			policy: groupsPolicy,
			want:   Identity{Email: "nameid@contoso.com", Role: RoleAgent, Company: "contoso", Provider: "contoso-azure"},
		},
		{
			name:   "invalid email claim falls back to UPN",
			claims: Claims{Attributes: attrs(ClaimEmail, "not an email", ClaimUPN, "u@contoso.com", ClaimGroups, gAgents)},
			policy: groupsPolicy,
			want:   Identity{Email: "u@contoso.com", Role: RoleAgent, Company: "contoso", Provider: "contoso-azure"},
		},
		{
			name:   "persistent NameID is not an email",
			claims: Claims{NameID: "AAAAAAAAAAAAAAAAAAAAAHZ1bGN", Attributes: attrs(ClaimGroups, gAgents)},
			policy: groupsPolicy,
			reason: ReasonBadEmail,
		},
		{
			name:   "no email at all",
			claims: Claims{Attributes: attrs(ClaimGroups, gAgents)},
			policy: groupsPolicy,
			reason: ReasonNoEmail,
		},
		{
			name:   "unauthorised domain",
			claims: Claims{Attributes: attrs(ClaimEmail, "pat.kim@fabrikam.com", ClaimGroups, gAgents)},
			policy: groupsPolicy,
			reason: ReasonDomain,
		},
		{
			name:   "subdomain is not authorised",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@eu.contoso.com", ClaimGroups, gAgents)},
			policy: groupsPolicy,
			reason: ReasonDomain,
		},
		{
			name:   "look-alike domain is not authorised",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@contoso.com.evil.com", ClaimGroups, gAgents)},
			policy: groupsPolicy,
			reason: ReasonDomain,
		},
		{
			name:   "domain is checked before role",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@fabrikam.com")},
			policy: groupsPolicy,
			reason: ReasonDomain,
		},
		{
			name:   "no mapped group",
			claims: Claims{Attributes: attrs(ClaimEmail, "lynne@contoso.com", ClaimGroups, gOther)},
			policy: groupsPolicy,
			reason: ReasonNoRole,
		},
		{
			name:   "no groups claim",
			claims: Claims{Attributes: attrs(ClaimEmail, "lynne@contoso.com")},
			policy: groupsPolicy,
			reason: ReasonNoRole,
		},
		{
			name:   "groups mode ignores app roles",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@contoso.com", ClaimRoles, "Engage.Agent")},
			policy: groupsPolicy,
			reason: ReasonNoRole,
		},
		{
			name:   "roles mode ignores groups",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@contoso.com", ClaimGroups, gOwners)},
			policy: rolesPolicy,
			reason: ReasonNoRole,
		},
		{
			name:   "group overage",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@contoso.com", ClaimGroupsLink, "https://graph.windows.net/x/users/y/getMemberObjects")},
			policy: groupsPolicy,
			reason: ReasonGroupOverage,
		},
		{
			name:   "renamed claims",
			claims: Claims{Attributes: attrs("mail", "a@contoso.com", "memberOf", gOwners)},
			policy: renamed,
			want:   Identity{Email: "a@contoso.com", Role: RoleAccountHolder, Company: "contoso", Provider: "contoso-azure"},
		},
		{
			name:   "renamed groups claim does not read the default",
			claims: Claims{Attributes: attrs("mail", "a@contoso.com", ClaimGroups, gOwners)},
			policy: renamed,
			reason: ReasonNoRole,
		},
		{
			name:   "unknown mode",
			claims: Claims{Attributes: attrs(ClaimEmail, "a@contoso.com", ClaimGroups, gOwners)},
			policy: Policy{Domains: []string{"contoso.com"}, Mode: "bogus", Mapping: testMapping()},
			reason: ReasonMisconfigured,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.claims, tt.policy)
			if tt.reason != "" {
				d, ok := IsDenied(err)
				if !ok || d.Reason != tt.reason {
					t.Fatalf("Resolve() error = %v; want denial %q", err, tt.reason)
				}
				if got != (Identity{}) {
					t.Errorf("Resolve() identity = %+v on denial; want zero", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve() error = %v", err)
			}
			if got != tt.want {
				t.Errorf("Resolve() = %+v; want %+v", got, tt.want)
			}
		})
	}
}

func TestDeniedErrorWraps(t *testing.T) {
	var err error = &DeniedError{Reason: ReasonNoRole, Detail: "x"}
	wrapped := errors.Join(errors.New("ctx"), err)
	d, ok := IsDenied(wrapped)
	if !ok || d.Reason != ReasonNoRole {
		t.Errorf("IsDenied(wrapped) = %v, %v", d, ok)
	}
	if _, ok := IsDenied(errors.New("other")); ok {
		t.Error("IsDenied(other) = true")
	}
}

func TestIdentityName(t *testing.T) {
	for _, tt := range []struct {
		id   Identity
		want string
	}{
		{Identity{DisplayName: "D", GivenName: "G", FamilyName: "F", Email: "e"}, "D"},
		{Identity{GivenName: "G", FamilyName: "F", Email: "e"}, "G F"},
		{Identity{GivenName: "G", Email: "e"}, "G"},
		{Identity{Email: "e"}, "e"},
	} {
		if got := tt.id.Name(); got != tt.want {
			t.Errorf("%+v.Name() = %q; want %q", tt.id, got, tt.want)
		}
	}
}

// TestGroupDisplayNames checks groups mode when Azure is set to send group
// names (cloud-only display names, sAMAccountName) instead of object IDs.
func TestGroupDisplayNames(t *testing.T) {
	m := RoleMapping{
		RoleAgent:      SplitIDs("Engage Agents"),
		RoleSupervisor: SplitIDs("Engage Supervisors|CONTOSO\\engage-sup"),
	}
	tests := []struct {
		values []string
		want   Role
	}{
		{[]string{"Sales", "engage agents"}, RoleAgent},
		{[]string{"Engage Agents", "Engage Supervisors"}, RoleSupervisor},
		{[]string{"contoso\\ENGAGE-SUP"}, RoleSupervisor},
		{[]string{"Engage", "Agents"}, RoleNone}, // the words of a name are not the name
	}
	for _, tt := range tests {
		if got := m.Highest(tt.values); got != tt.want {
			t.Errorf("Highest(%q) = %v; want %v", tt.values, got, tt.want)
		}
	}
}
