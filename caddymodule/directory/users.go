package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// page is the body of GET /users.
type page struct {
	Users      []User `json:"users"`
	NextCursor string `json:"next_cursor"`
}

// FindByExternalID returns the user of company whose external id (Azure
// object id) is externalID. It returns an error wrapping ErrNotFound when
// there is none.
func (c *Client) FindByExternalID(ctx context.Context, company, externalID string) (*User, error) {
	return c.find(ctx, "find_by_external_id", company, "external_id", externalID, func(u *User) bool {
		return u.ExternalID == externalID
	})
}

// FindByEmail returns the user of company whose email is email, compared
// case-insensitively. It returns an error wrapping ErrNotFound when there is
// none.
func (c *Client) FindByEmail(ctx context.Context, company, email string) (*User, error) {
	return c.find(ctx, "find_by_email", company, "email", email, func(u *User) bool {
		return strings.EqualFold(u.Email, email)
	})
}

// find looks a user up by one field. The answer must hold at most one user,
// of company, for whom match holds: anything else is a protocol error, so a
// faulty hook can never sign somebody in as another company's user.
func (c *Client) find(ctx context.Context, op, company, field, value string, match func(*User) bool) (*User, error) {
	switch {
	case company == "":
		return nil, invalidArg(op, "empty company")
	case value == "":
		return nil, invalidArg(op, "empty "+field)
	}
	var p page
	_, err := c.do(ctx, &call{
		op: op, method: http.MethodGet, path: "/users",
		query: url.Values{"company": {company}, field: {value}},
		ok:    []int{http.StatusOK}, out: &p,
	})
	if err != nil {
		return nil, err
	}
	switch len(p.Users) {
	case 0:
		return nil, &Error{Op: op, Kind: ErrNotFound}
	case 1:
	default:
		return nil, protocolError(op, http.StatusOK, "lookup returned %d users; want at most 1", len(p.Users))
	}
	u := &p.Users[0]
	if err := checkUser(op, u, company); err != nil {
		return nil, err
	}
	if !match(u) {
		return nil, protocolError(op, http.StatusOK, "lookup by %s returned user %q, who does not match", field, u.ID)
	}
	return u, nil
}

// Get returns the user with the given id, or an error wrapping ErrNotFound.
func (c *Client) Get(ctx context.Context, id string) (*User, error) {
	const op = "get"
	if id == "" {
		return nil, invalidArg(op, "empty user id")
	}
	var u User
	if _, err := c.do(ctx, &call{
		op: op, method: http.MethodGet, path: userPath(id),
		ok: []int{http.StatusOK}, out: &u,
	}); err != nil {
		return nil, err
	}
	if err := checkUser(op, &u, ""); err != nil {
		return nil, err
	}
	if u.ID != id {
		return nil, protocolError(op, http.StatusOK, "asked for user %q, got %q", id, u.ID)
	}
	return &u, nil
}

// Create creates u (its ID is ignored) and returns the user the hook made.
// Email, Company and Role are required. All attempts of one call send the
// same Idempotency-Key, so retries never create a second user. A user of the
// company with the same email or external id makes it fail with an error
// wrapping ErrConflict; the error's Code tells which
// (CodeDuplicateEmail, CodeDuplicateExternalID).
func (c *Client) Create(ctx context.Context, u User) (*User, error) {
	const op = "create"
	switch {
	case u.Email == "":
		return nil, invalidArg(op, "empty email")
	case u.Company == "":
		return nil, invalidArg(op, "empty company")
	case u.Role == "":
		return nil, invalidArg(op, "empty role")
	}
	key, err := c.idempotencyKey()
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	body, err := json.Marshal(struct {
		User
		ID string `json:"id,omitempty"` // shadows User.ID: never sent
	}{User: u})
	if err != nil {
		return nil, &Error{Op: op, Kind: ErrInvalid, Err: err}
	}
	var created User
	if _, err := c.do(ctx, &call{
		op: op, method: http.MethodPost, path: "/users", body: body, idempotencyKey: key,
		ok: []int{http.StatusOK, http.StatusCreated}, out: &created,
	}); err != nil {
		return nil, err
	}
	if err := checkUser(op, &created, u.Company); err != nil {
		return nil, err
	}
	return &created, nil
}

// Update applies patch to the user with the given id and returns the
// updated user. An unknown id gives an error wrapping ErrNotFound, an email
// or external id already used in the company one wrapping ErrConflict.
func (c *Client) Update(ctx context.Context, id string, patch Patch) (*User, error) {
	const op = "update"
	if id == "" {
		return nil, invalidArg(op, "empty user id")
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, &Error{Op: op, Kind: ErrInvalid, Err: err}
	}
	var u User
	if _, err := c.do(ctx, &call{
		op: op, method: http.MethodPatch, path: userPath(id), body: body,
		ok: []int{http.StatusOK}, out: &u,
	}); err != nil {
		return nil, err
	}
	if err := checkUser(op, &u, ""); err != nil {
		return nil, err
	}
	if u.ID != id {
		return nil, protocolError(op, http.StatusOK, "updated user %q, got %q", id, u.ID)
	}
	return &u, nil
}

// Deactivate marks the user with the given id inactive, so they can no
// longer sign in. Deactivating an inactive user succeeds. An unknown id
// gives an error wrapping ErrNotFound.
func (c *Client) Deactivate(ctx context.Context, id string) error {
	const op = "deactivate"
	if id == "" {
		return invalidArg(op, "empty user id")
	}
	_, err := c.do(ctx, &call{
		op: op, method: http.MethodPost, path: userPath(id) + "/deactivate",
		ok: []int{http.StatusOK, http.StatusNoContent},
	})
	return err
}

// Delete deletes the user with the given id. An unknown id gives an error
// wrapping ErrNotFound, except on a retry: a 404 after an attempt whose
// outcome is unknown means that attempt deleted the user.
func (c *Client) Delete(ctx context.Context, id string) error {
	const op = "delete"
	if id == "" {
		return invalidArg(op, "empty user id")
	}
	_, err := c.do(ctx, &call{
		op: op, method: http.MethodDelete, path: userPath(id),
		ok: []int{http.StatusOK, http.StatusNoContent}, goneOnRetry: true,
	})
	return err
}

// List returns one page of company's users, at most limit of them (0 means
// DefaultListLimit; at most MaxListLimit), starting at cursor ("" for the
// first page). next is the cursor of the following page, "" after the last.
func (c *Client) List(ctx context.Context, company, cursor string, limit int) (users []User, next string, err error) {
	const op = "list"
	switch {
	case company == "":
		return nil, "", invalidArg(op, "empty company")
	case limit < 0 || limit > MaxListLimit:
		return nil, "", invalidArg(op, fmt.Sprintf("limit %d not in [0, %d]", limit, MaxListLimit))
	case limit == 0:
		limit = DefaultListLimit
	}
	q := url.Values{"company": {company}, "limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var p page
	if _, err := c.do(ctx, &call{
		op: op, method: http.MethodGet, path: "/users", query: q,
		ok: []int{http.StatusOK}, out: &p,
	}); err != nil {
		return nil, "", err
	}
	for i := range p.Users {
		if err := checkUser(op, &p.Users[i], company); err != nil {
			return nil, "", err
		}
	}
	if p.NextCursor != "" && p.NextCursor == cursor {
		return nil, "", protocolError(op, http.StatusOK, "next cursor repeats the cursor")
	}
	if p.Users == nil {
		p.Users = []User{}
	}
	return p.Users, p.NextCursor, nil
}

// userPath returns the path of one user.
func userPath(id string) string { return "/users/" + url.PathEscape(id) }

// checkUser checks a user the hook returned: it needs an id and, when
// company is not empty, must belong to company.
func checkUser(op string, u *User, company string) error {
	switch {
	case u.ID == "":
		return protocolError(op, http.StatusOK, "user without id")
	case company != "" && u.Company != company:
		return protocolError(op, http.StatusOK, "user %q belongs to company %q; want %q", u.ID, u.Company, company)
	}
	return nil
}

func invalidArg(op, msg string) error {
	return &Error{Op: op, Kind: ErrInvalid, Err: errors.New(msg)}
}

func protocolError(op string, status int, format string, args ...any) error {
	return &Error{Op: op, Status: status, Kind: ErrProtocol, Err: fmt.Errorf(format, args...)}
}

// idempotencyKey returns a random UUID (version 4).
func (c *Client) idempotencyKey() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(c.rand, b[:]); err != nil {
		return "", fmt.Errorf("generating idempotency key: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}
