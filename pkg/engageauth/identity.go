package engageauth

import (
	"context"
	"time"
)

// The roles a user can have, lowest first.
const (
	RoleAgent         = "agent"
	RoleSupervisor    = "supervisor"
	RoleAccountHolder = "account_holder"
)

// Identity is the verified user behind a request. Times are in UTC.
type Identity struct {
	UserID     string    `json:"user_id"`     // "sub": the user id in your user directory
	Email      string    `json:"email"`       // "email"
	Name       string    `json:"name"`        // "name": display name
	GivenName  string    `json:"given_name"`  // "given_name"
	FamilyName string    `json:"family_name"` // "family_name"
	Role       string    `json:"role"`        // "role": RoleAgent, RoleSupervisor or RoleAccountHolder
	Company    string    `json:"company"`     // "company"
	Provider   string    `json:"provider"`    // "provider": label of the SSO provider used
	ObjectID   string    `json:"oid"`         // "oid": Azure AD object id of the user
	TenantID   string    `json:"tid"`         // "tid": Azure AD tenant id
	SessionID  string    `json:"sid"`         // "sid": engage-sso session identifier (not a secret)
	IssuedAt   time.Time `json:"issued_at"`   // "iat"
	ExpiresAt  time.Time `json:"expires_at"`  // "exp"
}

// RoleRank returns the rank of role: 1 for RoleAgent, 2 for RoleSupervisor,
// 3 for RoleAccountHolder and 0 for anything else.
func RoleRank(role string) int {
	switch role {
	case RoleAgent:
		return 1
	case RoleSupervisor:
		return 2
	case RoleAccountHolder:
		return 3
	}
	return 0
}

// AtLeast reports whether the identity's role is role or higher. An unknown
// role, on either side, is never enough.
func (id *Identity) AtLeast(role string) bool {
	want := RoleRank(role)
	return id != nil && want > 0 && RoleRank(id.Role) >= want
}

type contextKey struct{}

// NewContext returns a copy of ctx carrying id. The middleware uses it; tests
// of upstream handlers can use it too.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, contextKey{}, id)
}

// FromContext returns the identity stored in ctx by the middleware, if any.
func FromContext(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(contextKey{}).(*Identity)
	return id, ok && id != nil
}
