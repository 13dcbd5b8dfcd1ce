package devidp

import (
	"slices"
	"strings"
	"testing"
)

func TestDemoUsers(t *testing.T) {
	t.Parallel()
	users := DemoUsers()
	emails := map[string]bool{}
	objectIDs := map[string]bool{}
	for _, u := range users {
		if emails[strings.ToLower(u.Email)] {
			t.Errorf("duplicate email %q", u.Email)
		}
		emails[strings.ToLower(u.Email)] = true
		if objectIDs[u.ObjectID] {
			t.Errorf("duplicate object id %q", u.ObjectID)
		}
		objectIDs[u.ObjectID] = true
		if !guidPattern.MatchString(u.ObjectID) {
			t.Errorf("user %q: object id %q is not a GUID", u.Email, u.ObjectID)
		}
		if u.Note == "" || u.Password != DemoPassword || u.GivenName == "" || u.Surname == "" || u.DisplayName == "" {
			t.Errorf("user %q: note, password or names missing: %+v", u.Email, u)
		}
	}
	if _, err := newDirectory(users); err != nil {
		t.Errorf("newDirectory(DemoUsers()) error: %v", err)
	}

	// What each user demonstrates, as the docs and the demo Caddyfile say.
	tests := []struct {
		email  string
		groups []string
		roles  []string
	}{
		{"adele.vance@contoso.com", []string{GroupAgents}, []string{RoleAgent}},
		{"megan.bowen@contoso.com", []string{GroupSupervisors}, []string{RoleSupervisor}},
		{"alex.wilber@contoso.com", []string{GroupAccountHolders}, []string{RoleAccountHolder}},
		{"diego.siciliani@contoso.com", []string{GroupAgents, GroupSupervisors}, []string{RoleAgent, RoleSupervisor}},
		{"lynne.robbins@contoso.com", []string{GroupMarketing}, nil},
		{"pat.kim@fabrikam.com", []string{GroupAgents}, []string{RoleAgent}},
	}
	if len(users) != len(tests) {
		t.Errorf("DemoUsers() has %d users; want %d", len(users), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.email, func(t *testing.T) {
			i := slices.IndexFunc(users, func(u User) bool { return u.Email == tt.email })
			if i < 0 {
				t.Fatalf("DemoUsers() has no %q", tt.email)
			}
			if got := users[i].Groups; !slices.Equal(got, tt.groups) {
				t.Errorf("groups of %q = %q; want %q", tt.email, got, tt.groups)
			}
			if got := users[i].Roles; !slices.Equal(got, tt.roles) {
				t.Errorf("roles of %q = %q; want %q", tt.email, got, tt.roles)
			}
		})
	}

	// Each call returns a fresh copy.
	users[0].Groups[0] = "changed"
	if DemoUsers()[0].Groups[0] == "changed" {
		t.Errorf("DemoUsers() shares its slices between calls")
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	d, err := newDirectory(DemoUsers())
	if err != nil {
		t.Fatalf("newDirectory: %v", err)
	}
	tests := []struct {
		email, password string
		want            string // the email of the user signed in, or ""
	}{
		{"adele.vance@contoso.com", DemoPassword, "adele.vance@contoso.com"},
		{"  Adele.Vance@CONTOSO.com ", DemoPassword, "adele.vance@contoso.com"},
		{"adele.vance@contoso.com", "Demo-Password", ""},
		{"adele.vance@contoso.com", "", ""},
		{"nobody@contoso.com", DemoPassword, ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		u, ok := d.authenticate(tt.email, tt.password)
		got := ""
		if ok {
			got = u.Email
		}
		if got != tt.want {
			t.Errorf("authenticate(%q, %q) = %q; want %q", tt.email, tt.password, got, tt.want)
		}
	}
}

func TestClaimsOmitEmpty(t *testing.T) {
	t.Parallel()
	u := &User{Email: "a@b.c", ObjectID: "1", DisplayName: "A"}
	var got []string
	for _, a := range claims(u, DemoTenantID, "https://sts.windows.net/x/") {
		got = append(got, a.Name)
	}
	want := []string{ClaimTenantID, ClaimObjectID, ClaimDisplayName, ClaimIdentityProvider,
		ClaimAuthnMethodsReferences, ClaimEmailAddress, ClaimName}
	if !slices.Equal(got, want) {
		t.Errorf("claims(%+v) names = %q; want %q", u, got, want)
	}
}
