package devidp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/crewjam/saml"
)

// DemoTenantID is the Azure tenant (directory) id of the demo directory. It
// appears in the IdP's entity ID, its endpoint paths and the tenantid claim.
const DemoTenantID = "4f7c2a1e-9b3d-4c5e-8f60-1a2b3c4d5e6f"

// Object IDs of the demo directory's security groups, as Azure sends them in
// the groups claim.
const (
	// GroupAgents is the object ID of the "Engage Agents" group.
	GroupAgents = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e01"
	// GroupSupervisors is the object ID of the "Engage Supervisors" group.
	GroupSupervisors = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e02"
	// GroupAccountHolders is the object ID of the "Engage Account Holders" group.
	GroupAccountHolders = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e03"
	// GroupMarketing is the object ID of the "Marketing" group, which no
	// Engage role is mapped to.
	GroupMarketing = "0c5a1f6e-3b2d-4e8f-9a71-5d6c7b8a9e09"
)

// Values of the demo enterprise application's app roles, as Azure sends them
// in the role claim.
const (
	// RoleAgent is the app role of agents.
	RoleAgent = "Engage.Agent"
	// RoleSupervisor is the app role of supervisors.
	RoleSupervisor = "Engage.Supervisor"
	// RoleAccountHolder is the app role of account holders.
	RoleAccountHolder = "Engage.AccountHolder"
)

// DemoPassword is the password of every user DemoUsers returns. It is shown
// on the IdP's pages: the demo directory is not a secret.
const DemoPassword = "demo-password"

// Claim URIs of the attributes the IdP sends, in the order it sends them.
// They are the names Azure AD uses by default.
const (
	// ClaimTenantID is the tenant id (a GUID).
	ClaimTenantID = "http://schemas.microsoft.com/identity/claims/tenantid"
	// ClaimObjectID is the user's object id (a GUID).
	ClaimObjectID = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	// ClaimDisplayName is the user's display name.
	ClaimDisplayName = "http://schemas.microsoft.com/identity/claims/displayname"
	// ClaimGroups holds the object IDs of the user's groups, one value
	// each; it is left out for a user in no group.
	ClaimGroups = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	// ClaimRole holds the user's app role values, one each; it is left
	// out for a user without app roles.
	ClaimRole = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
	// ClaimIdentityProvider is the entity ID of the IdP.
	ClaimIdentityProvider = "http://schemas.microsoft.com/identity/claims/identityprovider"
	// ClaimAuthnMethodsReferences says how the user signed in
	// (AuthnMethodPassword).
	ClaimAuthnMethodsReferences = "http://schemas.microsoft.com/claims/authnmethodsreferences"
	// ClaimGivenName is the user's given name.
	ClaimGivenName = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	// ClaimSurname is the user's surname.
	ClaimSurname = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	// ClaimEmailAddress is the user's email address.
	ClaimEmailAddress = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	// ClaimName is the user principal name (UPN), the email here.
	ClaimName = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
)

// AuthnMethodPassword is the value of the authnmethodsreferences claim for a
// user who signed in with a password.
const AuthnMethodPassword = "http://schemas.microsoft.com/ws/2008/06/identity/authenticationmethod/password"

// User is an account in the IdP's directory.
type User struct {
	// Email is the sign-in name: the NameID, the emailaddress claim and
	// the name (UPN) claim. It is matched case-insensitively.
	Email string
	// Password is compared exactly.
	Password string
	// GivenName is the givenname claim.
	GivenName string
	// Surname is the surname claim.
	Surname string
	// DisplayName is the displayname claim.
	DisplayName string
	// ObjectID is the Azure object id (a GUID) of the user.
	ObjectID string
	// Groups are the object IDs of the groups the user is a member of.
	Groups []string
	// Roles are the values of the app roles assigned to the user.
	Roles []string
	// Note says what this user demonstrates; it is shown on the sign-in page.
	Note string
}

// DemoUsers returns the demo directory: one user per outcome of the
// engage-sso role and domain rules. All of them have the password
// DemoPassword. Each call returns a new slice that the caller may modify.
func DemoUsers() []User {
	return []User{
		{
			Email: "adele.vance@contoso.com", Password: DemoPassword,
			GivenName: "Adele", Surname: "Vance", DisplayName: "Adele Vance",
			ObjectID: "6e0b2c1a-8f4d-4b7e-9a35-2c7d1e8f0a01",
			Groups:   []string{GroupAgents}, Roles: []string{RoleAgent},
			Note: "Agent: member of Engage Agents, app role Engage.Agent.",
		},
		{
			Email: "megan.bowen@contoso.com", Password: DemoPassword,
			GivenName: "Megan", Surname: "Bowen", DisplayName: "Megan Bowen",
			ObjectID: "6e0b2c1a-8f4d-4b7e-9a35-2c7d1e8f0a02",
			Groups:   []string{GroupSupervisors}, Roles: []string{RoleSupervisor},
			Note: "Supervisor: member of Engage Supervisors, app role Engage.Supervisor.",
		},
		{
			Email: "alex.wilber@contoso.com", Password: DemoPassword,
			GivenName: "Alex", Surname: "Wilber", DisplayName: "Alex Wilber",
			ObjectID: "6e0b2c1a-8f4d-4b7e-9a35-2c7d1e8f0a03",
			Groups:   []string{GroupAccountHolders}, Roles: []string{RoleAccountHolder},
			Note: "Account holder: member of Engage Account Holders, app role Engage.AccountHolder: the highest role.",
		},
		{
			Email: "diego.siciliani@contoso.com", Password: DemoPassword,
			GivenName: "Diego", Surname: "Siciliani", DisplayName: "Diego Siciliani",
			ObjectID: "6e0b2c1a-8f4d-4b7e-9a35-2c7d1e8f0a04",
			Groups:   []string{GroupAgents, GroupSupervisors}, Roles: []string{RoleAgent, RoleSupervisor},
			Note: "Two role groups (Agents and Supervisors, both app roles): the highest wins, so supervisor.",
		},
		{
			Email: "lynne.robbins@contoso.com", Password: DemoPassword,
			GivenName: "Lynne", Surname: "Robbins", DisplayName: "Lynne Robbins",
			ObjectID: "6e0b2c1a-8f4d-4b7e-9a35-2c7d1e8f0a05",
			Groups:   []string{GroupMarketing},
			Note:     "Only in Marketing, no app role: denied with \"no role mapped\".",
		},
		{
			Email: "pat.kim@fabrikam.com", Password: DemoPassword,
			GivenName: "Pat", Surname: "Kim", DisplayName: "Pat Kim",
			ObjectID: "6e0b2c1a-8f4d-4b7e-9a35-2c7d1e8f0a06",
			Groups:   []string{GroupAgents}, Roles: []string{RoleAgent},
			Note: "Agent group and role, but fabrikam.com is not an authorised domain: denied with \"domain not authorised\".",
		},
	}
}

// directory is the immutable set of users the IdP authenticates.
type directory struct {
	users   []User           // in configuration order, for display
	byEmail map[string]*User // keyed by lower-case email
}

// newDirectory checks users and returns a directory holding deep copies of
// them: emails and object IDs must be present and unique, and every user
// needs a password.
func newDirectory(users []User) (*directory, error) {
	d := &directory{
		users:   make([]User, 0, len(users)),
		byEmail: make(map[string]*User, len(users)),
	}
	emails := make(map[string]bool, len(users))
	objectIDs := make(map[string]bool, len(users))
	for i, u := range users {
		email := strings.TrimSpace(u.Email)
		switch {
		case email == "" || !strings.Contains(email, "@"):
			return nil, fmt.Errorf("user %d: email %q is not an email address", i, u.Email)
		case u.Password == "":
			return nil, fmt.Errorf("user %q: password is empty", email)
		case u.ObjectID == "":
			return nil, fmt.Errorf("user %q: object id is empty", email)
		case emails[strings.ToLower(email)]:
			return nil, fmt.Errorf("user %q: duplicate email", email)
		case objectIDs[strings.ToLower(u.ObjectID)]:
			return nil, fmt.Errorf("user %q: duplicate object id %q", email, u.ObjectID)
		}
		u.Email = email
		u.Groups = append([]string(nil), u.Groups...)
		u.Roles = append([]string(nil), u.Roles...)
		d.users = append(d.users, u)
		emails[strings.ToLower(email)] = true
		objectIDs[strings.ToLower(u.ObjectID)] = true
	}
	if len(d.users) == 0 {
		return nil, errors.New("no users")
	}
	// The map is built once d.users no longer grows, so that its pointers
	// stay valid.
	for i := range d.users {
		d.byEmail[strings.ToLower(d.users[i].Email)] = &d.users[i]
	}
	return d, nil
}

// lookup returns the user with the given email, ignoring case and
// surrounding space.
func (d *directory) lookup(email string) (*User, bool) {
	u, ok := d.byEmail[strings.ToLower(strings.TrimSpace(email))]
	return u, ok
}

// authenticate returns the user whose email and password these are. The
// password is compared in constant time, against a dummy for an unknown
// user, so that the response time does not tell which emails exist.
func (d *directory) authenticate(email, password string) (*User, bool) {
	u, ok := d.lookup(email)
	want := "\x00no such user"
	if ok {
		want = u.Password
	}
	match := subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
	if !ok || !match {
		return nil, false
	}
	return u, true
}

// claims returns the attributes Azure AD sends for u by default, in Azure's
// order, for the IdP with the given tenant and entity ID. Claims without a
// value are left out, as Azure does.
func claims(u *User, tenantID, entityID string) []saml.Attribute {
	var attrs []saml.Attribute
	add := func(name string, values ...string) {
		attr := saml.Attribute{Name: name}
		for _, v := range values {
			if v != "" {
				attr.Values = append(attr.Values, saml.AttributeValue{Value: v})
			}
		}
		if len(attr.Values) > 0 {
			attrs = append(attrs, attr)
		}
	}
	add(ClaimTenantID, tenantID)
	add(ClaimObjectID, u.ObjectID)
	add(ClaimDisplayName, u.DisplayName)
	add(ClaimGroups, u.Groups...)
	add(ClaimRole, u.Roles...)
	add(ClaimIdentityProvider, entityID)
	add(ClaimAuthnMethodsReferences, AuthnMethodPassword)
	add(ClaimGivenName, u.GivenName)
	add(ClaimSurname, u.Surname)
	add(ClaimEmailAddress, u.Email)
	add(ClaimName, u.Email)
	return attrs
}
