package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Refusals of SignIn: the hook answered, and the answer means this person
// may not sign in.
var (
	// ErrNoAccount: JIT is off and the user has no account.
	ErrNoAccount = errors.New("directory: no account for this user")
	// ErrInactive: the user's account is deactivated.
	ErrInactive = errors.New("directory: account deactivated")
	// ErrEmailTaken: the email belongs to a user linked to another IdP
	// identity (another external id).
	ErrEmailTaken = errors.New("directory: email belongs to another IdP user")
)

// Login is what a verified sign-in tells about the user.
type Login struct {
	Company     string // engage-sso company id; required
	Provider    string // provider label
	ExternalID  string // Azure object id; may be empty for IdPs without one
	Email       string // required
	GivenName   string
	FamilyName  string
	DisplayName string
	Role        string // RoleAgent, RoleSupervisor or RoleAccountHolder; required
}

// SignIn returns the account of the user behind l, as docs/upstream-api.md
// describes for JIT sign-in:
//
//  1. find the company's user by external id, else by email (linking a
//     found user without external id to l's);
//  2. if there is none: create one when jit is true (looking up again if a
//     concurrent sign-in created it first), else fail with ErrNoAccount;
//  3. fail with ErrInactive for a deactivated user;
//  4. update the email, names and role where l differs (the IdP is the
//     source of truth; empty names in l change nothing).
//
// A user found by email but linked to another external id fails with
// ErrEmailTaken. Other errors are the hook's, as from the other methods.
func (c *Client) SignIn(ctx context.Context, l Login, jit bool) (*User, error) {
	if l.Company == "" || l.Email == "" || l.Role == "" {
		return nil, invalidArg("sign_in", "company, email and role are required")
	}
	u, err := c.findLogin(ctx, l)
	if errors.Is(err, ErrNotFound) {
		if !jit {
			return nil, fmt.Errorf("directory: sign-in of %s in company %s: %w", l.Email, l.Company, ErrNoAccount)
		}
		u, err = c.Create(ctx, User{
			Email: l.Email, GivenName: l.GivenName, FamilyName: l.FamilyName, DisplayName: l.DisplayName,
			Role: l.Role, Active: true, Company: l.Company, ExternalID: l.ExternalID, Provider: l.Provider,
		})
		if errors.Is(err, ErrConflict) {
			// A concurrent first sign-in created the user meanwhile.
			if again, ferr := c.findLogin(ctx, l); ferr == nil {
				u, err = again, nil
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return nil, fmt.Errorf("directory: sign-in of user %s: %w", u.ID, ErrInactive)
	}
	patch, changed := syncPatch(u, l)
	if !changed {
		return u, nil
	}
	return c.Update(ctx, u.ID, patch)
}

// findLogin finds the user of l by external id, then by email. A user found
// by email must have no external id or l's.
func (c *Client) findLogin(ctx context.Context, l Login) (*User, error) {
	if l.ExternalID != "" {
		u, err := c.FindByExternalID(ctx, l.Company, l.ExternalID)
		if !errors.Is(err, ErrNotFound) {
			return u, err
		}
	}
	u, err := c.FindByEmail(ctx, l.Company, l.Email)
	if err != nil {
		return nil, err
	}
	if l.ExternalID != "" && u.ExternalID != "" && u.ExternalID != l.ExternalID {
		return nil, fmt.Errorf("directory: sign-in of %s: user %s has external id %q, not %q: %w",
			l.Email, u.ID, u.ExternalID, l.ExternalID, ErrEmailTaken)
	}
	return u, nil
}

// syncPatch returns the update that brings u in line with l.
func syncPatch(u *User, l Login) (Patch, bool) {
	var p Patch
	changed := false
	set := func(dst **string, have, want string) {
		if want != "" && want != have {
			*dst = &want
			changed = true
		}
	}
	if !strings.EqualFold(u.Email, l.Email) {
		set(&p.Email, u.Email, l.Email)
	}
	set(&p.GivenName, u.GivenName, l.GivenName)
	set(&p.FamilyName, u.FamilyName, l.FamilyName)
	set(&p.DisplayName, u.DisplayName, l.DisplayName)
	set(&p.Role, u.Role, l.Role)
	if u.ExternalID == "" && l.ExternalID != "" { // linking an account made before SSO
		set(&p.ExternalID, u.ExternalID, l.ExternalID)
		set(&p.Provider, u.Provider, l.Provider)
	}
	return p, changed
}
