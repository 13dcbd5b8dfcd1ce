// Package directory is engage-sso's client for the user hook: the small
// JSON-over-HTTP API through which the upstream application, which owns the
// user accounts, lets engage-sso look users up, create them at their first
// sign-in (JIT provisioning), update and deactivate them. engage-sso never
// keeps a copy of the users.
//
// The contract is documented in docs/upstream-api.md and
// docs/user-hook.openapi.yaml; internal/hookcheck tests an implementation
// against it.
//
// [Client.SignIn] runs the whole JIT sign-in on top of the operations: find
// the user by external id or email, link, create, refuse deactivated users,
// and bring names and role up to date.
//
// Every call carries a short-lived bearer JWT from [Config.Token]. Calls that
// fail on the network, time out or get a 5xx (or 429) answer are retried a
// bounded number of times; a 4xx answer is final. A create sends one
// Idempotency-Key for all its attempts, so a retried create never makes a
// second user. Errors wrap one of the sentinel errors ([ErrNotFound],
// [ErrConflict], [ErrInvalid], [ErrUnauthorized], [ErrUnavailable],
// [ErrProtocol]) in an [*Error] naming the operation and the HTTP status;
// they never carry the bearer token or a response body beyond the hook's
// error code and message.
//
// The package has no Caddy dependency; caddymodule wires it up.
package directory

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/engage-sso/engage-sso/internal/retry"
)

// The roles a user can have, lowest first.
const (
	RoleAgent         = "agent"
	RoleSupervisor    = "supervisor"
	RoleAccountHolder = "account_holder"
)

// Error codes of the hook's error bodies ({"error":{"code":…,"message":…}}).
const (
	CodeNotFound            = "not_found"             // 404: no such user
	CodeConflict            = "conflict"              // 409: the change conflicts with another user
	CodeDuplicateEmail      = "duplicate_email"       // 409: another user of the company has the email
	CodeDuplicateExternalID = "duplicate_external_id" // 409: another user of the company has the external id
	CodeInvalid             = "invalid"               // 400 or 422: the request is malformed or breaks a rule
	CodeUnauthorized        = "unauthorized"          // 401: missing or bad bearer token
	CodeInternal            = "internal"              // 500: the hook failed
	CodeUnavailable         = "unavailable"           // 503: the hook cannot serve now
)

// Defaults and limits of a Client.
const (
	// DefaultTimeout bounds one attempt of a call.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxAttempts is how many times a call is tried at most.
	DefaultMaxAttempts = 3
	// MaxRetryAfter is the longest Retry-After a client waits for. A hook
	// asking for a longer wait fails the call with ErrUnavailable at once:
	// somebody is waiting for the sign-in.
	MaxRetryAfter = 5 * time.Second
	// MaxResponseSize is the largest response body read, in bytes.
	MaxResponseSize = 1 << 20
	// DefaultListLimit is the page size List asks for when given none.
	DefaultListLimit = 100
	// MaxListLimit is the largest page size the contract allows.
	MaxListLimit = 500
)

// Sentinel errors. Every error a Client returns for a call wraps exactly one
// of them, or none when the call could not be made at all (bad argument, no
// bearer token).
var (
	// ErrNotFound: no such user (404), or a lookup found none.
	ErrNotFound = errors.New("directory: user not found")
	// ErrConflict: the hook refused the change because it clashes with
	// another user (409), such as a duplicate email within the company.
	ErrConflict = errors.New("directory: conflict")
	// ErrInvalid: the hook refused the request as invalid (400, 422), or
	// the client refused to send it.
	ErrInvalid = errors.New("directory: invalid request")
	// ErrUnauthorized: the hook refused the bearer token (401, 403); a
	// deployment fault (keys, audience, issuer), not a user's.
	ErrUnauthorized = errors.New("directory: unauthorized")
	// ErrUnavailable: the hook could not be reached, timed out or failed
	// (5xx, 429) on every attempt.
	ErrUnavailable = errors.New("directory: user hook unavailable")
	// ErrProtocol: the hook answered something outside the contract: an
	// unexpected status, a malformed or oversized body, or a user that
	// does not match the lookup.
	ErrProtocol = errors.New("directory: unexpected answer from user hook")
)

// User is a user account as the hook returns it.
type User struct {
	// ID is the upstream's user id, assigned by the hook. engage-sso puts it
	// in the "sub" claim of the identity token.
	ID string `json:"id"`
	// Email is the user's email address; unique within a company,
	// compared case-insensitively.
	Email string `json:"email"`
	// GivenName and FamilyName are the user's names; may be empty.
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	// DisplayName is the full name to show; may be empty.
	DisplayName string `json:"display_name"`
	// Role is RoleAgent, RoleSupervisor or RoleAccountHolder.
	Role string `json:"role"`
	// Active is false for a deactivated user, who must not sign in.
	// Create sends it as given: set it for a user who may sign in.
	Active bool `json:"active"`
	// Company is the engage-sso company id the user belongs to.
	Company string `json:"company"`
	// ExternalID is the user's id at the IdP: the Azure object id.
	ExternalID string `json:"external_id"`
	// Provider is the label of the provider that created or last linked
	// the user.
	Provider string `json:"provider"`
}

// Patch is a partial update: nil fields are left unchanged.
type Patch struct {
	Email       *string `json:"email,omitempty"`
	GivenName   *string `json:"given_name,omitempty"`
	FamilyName  *string `json:"family_name,omitempty"`
	DisplayName *string `json:"display_name,omitempty"`
	Role        *string `json:"role,omitempty"`
	Active      *bool   `json:"active,omitempty"`
	ExternalID  *string `json:"external_id,omitempty"`
	Provider    *string `json:"provider,omitempty"`
}

// Config configures a Client. Zero values take the documented defaults;
// BaseURL and Token are required.
type Config struct {
	// BaseURL is the hook's base URL, such as
	// https://engage.internal/sso-hook; operations are below it
	// ({BaseURL}/users…). It must be an absolute http or https URL without
	// query or fragment.
	BaseURL string

	// Token returns the bearer token for one attempt, typically a JWT with
	// audience "user-hook" minted by token.Minter.MintAudience. Required.
	Token func(ctx context.Context) (string, error)

	// HTTPClient sends the requests; set it to use a transport with mTLS.
	// Its redirect policy is replaced: redirects are never followed.
	// Default: a client with http.DefaultTransport.
	HTTPClient *http.Client

	// Timeout bounds each attempt, including reading the response.
	// Default: DefaultTimeout.
	Timeout time.Duration

	// MaxAttempts is how many times a call is tried at most. Only network
	// errors, timeouts, 5xx and 429 answers are retried. Default:
	// DefaultMaxAttempts.
	MaxAttempts int

	// Backoff returns the wait before retry attempt (2 for the first
	// retry, …). Default: exponential from 100ms with full jitter, at most
	// 2s. A Retry-After header of a 429 or 503 answer, if at most
	// MaxRetryAfter, takes precedence.
	Backoff func(attempt int) time.Duration

	// Sleep waits for d or until ctx is done, returning ctx's error in that
	// case. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error

	// Rand is the source of idempotency keys and backoff jitter. Default:
	// crypto/rand.Reader.
	Rand io.Reader

	// Now returns the current time, for Retry-After dates. Default:
	// time.Now.
	Now func() time.Time

	// Observe, if not nil, is called after every attempt with the
	// operation name (such as "create"), the HTTP status (0 when no answer
	// arrived), the attempt's error (nil on success, including a lookup
	// that found nobody) and its duration. Use it for metrics.
	Observe func(op string, status int, err error, d time.Duration)
}

// Client calls the user hook. It is safe for concurrent use.
type Client struct {
	base        string // without trailing slash
	token       func(ctx context.Context) (string, error)
	http        *http.Client
	timeout     time.Duration
	maxAttempts int
	backoff     func(attempt int) time.Duration
	sleep       func(ctx context.Context, d time.Duration) error
	rand        io.Reader
	now         func() time.Time
	observe     func(op string, status int, err error, d time.Duration)
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("directory: parsing base URL: %w", err)
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("directory: base URL %q is not an absolute http or https URL", cfg.BaseURL)
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return nil, fmt.Errorf("directory: base URL %q must have no query, fragment or user info", cfg.BaseURL)
	case cfg.Token == nil:
		return nil, errors.New("directory: no bearer token source configured")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("directory: negative timeout %s", cfg.Timeout)
	case cfg.MaxAttempts < 0:
		return nil, fmt.Errorf("directory: negative max attempts %d", cfg.MaxAttempts)
	}
	c := &Client{
		base:        strings.TrimRight(u.String(), "/"),
		token:       cfg.Token,
		timeout:     cfg.Timeout,
		maxAttempts: cfg.MaxAttempts,
		backoff:     cfg.Backoff,
		sleep:       cfg.Sleep,
		rand:        cfg.Rand,
		now:         cfg.Now,
		observe:     cfg.Observe,
	}
	hc := http.Client{}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	// A redirect would resend the request (or turn a POST into a GET)
	// somewhere the configuration did not name: treat it as an answer.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http = &hc
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxAttempts == 0 {
		c.maxAttempts = DefaultMaxAttempts
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.backoff == nil {
		c.backoff = c.defaultBackoff
	}
	if c.sleep == nil {
		c.sleep = retry.Sleep
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Error is the error of a failed call. It wraps one of the sentinel errors
// (Kind) and, where there is one, the underlying cause.
type Error struct {
	// Op is the operation: "find_by_email", "find_by_external_id", "get",
	// "create", "update", "deactivate", "delete", "list" or "sign_in".
	Op string
	// Status is the HTTP status of the last answer, 0 if none arrived.
	Status int
	// Code and Message are the hook's error code and message, if its
	// answer had them; Message is cut to 200 bytes.
	Code    string
	Message string
	// Kind is the sentinel error classifying the failure, nil if none
	// applies.
	Kind error
	// Err is the underlying cause, such as a network error; may be nil.
	Err error
}

// Error describes the failure; it never contains the bearer token.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("directory: ")
	b.WriteString(e.Op)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	switch {
	case e.Err != nil:
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	case e.Kind != nil && e.Status == 0:
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "directory: "))
	}
	return b.String()
}

// Unwrap returns Kind and Err, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// defaultBackoff is exponential backoff from 100ms with full jitter, at most
// 2s.
func (c *Client) defaultBackoff(attempt int) time.Duration {
	const base, limit = 100 * time.Millisecond, 2 * time.Second
	ceiling := limit
	if attempt >= 2 && attempt-2 < 5 {
		ceiling = min(limit, base<<(attempt-2))
	}
	var b [8]byte
	if _, err := io.ReadFull(c.rand, b[:]); err != nil {
		return ceiling
	}
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return time.Duration(n % uint64(ceiling+1))
}
