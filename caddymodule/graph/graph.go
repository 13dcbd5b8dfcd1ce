// Package graph resolves an Azure AD (Microsoft Entra ID) user's group
// memberships through Microsoft Graph, for the "group overage" case.
//
// When a user is in more than 150 groups, Azure AD leaves the groups claim
// out of the SAML assertion and sends the
// http://schemas.microsoft.com/claims/groups.link claim instead. If the
// operator configured Graph application credentials for the identity
// provider, engage-sso then asks Graph for the user's transitive group
// memberships ([Client.MemberGroups]) instead of refusing the sign-in.
//
// The client uses the OAuth 2.0 client-credentials grant against the
// Microsoft identity platform (v2.0 token endpoint) and calls
// GET /v1.0/users/{id}/transitiveMemberOf?$select=id&$top=999, keeping only
// the #microsoft.graph.group entries and following @odata.nextLink only to
// the configured Graph host.
//
// # Azure permission
//
// The app registration needs a Microsoft Graph *application* permission,
// granted with admin consent. The Graph permissions table for "List a
// user's memberships (direct and transitive)" marks User.Read.All as the
// least privileged application permission for another user's memberships;
// GroupMember.Read.All (application), listed there as sufficient too, is the
// alternative when the app should read group memberships rather than user
// profiles. Either one needs admin consent.
// Without it Graph answers 403 Authorization_RequestDenied, reported as
// [ErrForbidden].
//
// # Errors
//
// Every error of [Client.MemberGroups] is an [*Error] naming the step (token
// or groups), the HTTP status and the AAD or Graph error code, message and
// request id, and wraps one sentinel: [ErrInvalid], [ErrCredentials], [ErrForbidden],
// [ErrUserNotFound], [ErrTooManyGroups], [ErrUnavailable] or [ErrProtocol].
// [New] refuses a bad Config with an error wrapping [ErrInvalid]. Callers
// must fail closed on any error. Errors never contain the client secret or
// the access token.
//
// The package has no Caddy dependency; caddymodule wires it up.
// Subpackage graphtest is a local fake of the token endpoint and of Graph.
package graph

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults and limits of a Client.
const (
	// DefaultLoginURL is the Microsoft identity platform of the global
	// cloud.
	DefaultLoginURL = "https://login.microsoftonline.com"
	// DefaultGraphURL is Microsoft Graph of the global cloud.
	DefaultGraphURL = "https://graph.microsoft.com"
	// DefaultTimeout bounds one MemberGroups call, token fetch included.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxGroups is how many groups MemberGroups returns at most
	// before it fails with ErrTooManyGroups.
	DefaultMaxGroups = 5000
	// MaxPageBytes is the largest Graph response body read, per page.
	MaxPageBytes = 4 << 20
	// MaxTokenBytes is the largest token endpoint response body read.
	MaxTokenBytes = 64 << 10
	// TokenRefreshMargin is how long before its expiry a cached access
	// token is replaced.
	TokenRefreshMargin = 2 * time.Minute
	// MaxThrottleRetries is how many times one call retries after a 429,
	// 503 or 504 answer, each time waiting as long as Retry-After asks,
	// provided the wait ends before the call's deadline.
	MaxThrottleRetries = 2
	// maxErrorBytes is how much of an error answer is read for its code
	// and message.
	maxErrorBytes = 64 << 10
	// maxMessage is the longest message or code kept from an error
	// answer, in bytes.
	maxMessage = 200
)

// Steps of a call, as reported in Error.Step.
const (
	StepToken  = "token"  // client-credentials grant at the token endpoint
	StepGroups = "groups" // transitiveMemberOf at Graph
)

// Sentinel errors. Every error a Client returns wraps exactly one of them.
var (
	// ErrInvalid: a bad argument or configuration, refused before any
	// request was sent (such as a user object id that is not a GUID).
	ErrInvalid = errors.New("graph: invalid argument")
	// ErrCredentials: the token endpoint refused the application
	// credentials (invalid_client, unauthorized_client, unknown tenant,
	// bad scope), or Graph refused a freshly issued token (401 twice).
	// A deployment fault: check tenant id, client id and secret.
	ErrCredentials = errors.New("graph: application credentials refused")
	// ErrForbidden: Graph refused the request for lack of permission
	// (403, Authorization_RequestDenied). An administrator must grant the
	// application GroupMember.Read.All or User.Read.All (application
	// permission) with admin consent.
	ErrForbidden = errors.New("graph: permission denied (grant the application GroupMember.Read.All or User.Read.All as an application permission, with admin consent)")
	// ErrUserNotFound: Graph knows no user with that object id (404,
	// Request_ResourceNotFound).
	ErrUserNotFound = errors.New("graph: user not found")
	// ErrTooManyGroups: the user is in more groups than Config.MaxGroups.
	ErrTooManyGroups = errors.New("graph: too many groups")
	// ErrUnavailable: the token endpoint or Graph could not be reached,
	// timed out, was throttled beyond the retries or failed (5xx).
	ErrUnavailable = errors.New("graph: unavailable")
	// ErrProtocol: an answer outside the documented shape: an unexpected
	// status, malformed or oversized body, a group id that is not a GUID,
	// too many pages, or an @odata.nextLink leaving the Graph host.
	ErrProtocol = errors.New("graph: unexpected answer")
)

// Config configures a Client. The zero values of the optional fields select
// the defaults.
type Config struct {
	// TenantID is the Azure tenant id (a GUID) or one of its verified
	// domains. Required; "common", "organizations" and "consumers" are
	// refused because the client-credentials grant needs a tenant.
	TenantID string
	// ClientID is the application (client) id of the app registration.
	// Required.
	ClientID string
	// ClientSecret is a client secret value of the app registration.
	// Required. It is never logged nor put into errors.
	ClientSecret string
	// LoginURL is the base of the token endpoint, default DefaultLoginURL.
	// The token URL is {LoginURL}/{TenantID}/oauth2/v2.0/token.
	LoginURL string
	// GraphURL is the base of Microsoft Graph, default DefaultGraphURL.
	// Requests go to {GraphURL}/v1.0/…; the token scope is
	// {GraphURL}/.default.
	GraphURL string
	// HTTPClient sends the requests; nil means a client with sane
	// timeouts. Redirects are never followed, whatever the client says.
	HTTPClient *http.Client
	// Timeout bounds a whole MemberGroups call, default DefaultTimeout.
	Timeout time.Duration
	// MaxGroups is how many groups MemberGroups returns at most; beyond
	// it the call fails with ErrTooManyGroups. Default DefaultMaxGroups.
	MaxGroups int
	// Now tells the time for token expiry; nil means time.Now.
	Now func() time.Time
}

// String describes the configuration without the client secret.
func (c Config) String() string {
	secret := ""
	if c.ClientSecret != "" {
		secret = "REDACTED"
	}
	return fmt.Sprintf("graph.Config{TenantID:%q ClientID:%q ClientSecret:%s LoginURL:%q GraphURL:%q Timeout:%v MaxGroups:%d}",
		c.TenantID, c.ClientID, secret, c.LoginURL, c.GraphURL, c.Timeout, c.MaxGroups)
}

// GoString is String, so that %#v does not print the secret either.
func (c Config) GoString() string { return c.String() }

// Client resolves group memberships through Microsoft Graph. It caches one
// access token and is safe for concurrent use.
type Client struct {
	tenant    string
	clientID  string
	secret    string
	tokenURL  string
	scope     string
	graph     *url.URL // scheme and host of GraphURL, path without trailing slash
	hc        *http.Client
	timeout   time.Duration
	maxGroups int
	maxPages  int
	now       func() time.Time

	// fetching serialises token fetches, so that concurrent calls share
	// one; a waiter gives up when its context ends.
	fetching chan struct{}

	mu        sync.Mutex // guards token and refreshAt
	token     string
	refreshAt time.Time
}

// New checks cfg and returns a Client. It sends no request.
func New(cfg Config) (*Client, error) {
	if err := checkTenant(cfg.TenantID); err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.ClientID) == "" || hasControl(cfg.ClientID) {
		return nil, fmt.Errorf("%w: client id must be set and printable", ErrInvalid)
	}
	if cfg.ClientSecret == "" {
		return nil, fmt.Errorf("%w: client secret must be set", ErrInvalid)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: timeout %v is negative", ErrInvalid, cfg.Timeout)
	}
	if cfg.MaxGroups < 0 {
		return nil, fmt.Errorf("%w: max groups %d is negative", ErrInvalid, cfg.MaxGroups)
	}
	login, err := baseURL("login URL", cfg.LoginURL, DefaultLoginURL)
	if err != nil {
		return nil, err
	}
	graph, err := baseURL("graph URL", cfg.GraphURL, DefaultGraphURL)
	if err != nil {
		return nil, err
	}
	c := &Client{
		tenant:    cfg.TenantID,
		clientID:  cfg.ClientID,
		secret:    cfg.ClientSecret,
		tokenURL:  login.String() + "/" + url.PathEscape(cfg.TenantID) + "/oauth2/v2.0/token",
		scope:     graph.String() + "/.default",
		graph:     graph,
		timeout:   cfg.Timeout,
		maxGroups: cfg.MaxGroups,
		now:       cfg.Now,
		fetching:  make(chan struct{}, 1),
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxGroups == 0 {
		c.maxGroups = DefaultMaxGroups
	}
	c.maxPages = c.maxGroups/100 + 10
	if c.now == nil {
		c.now = time.Now
	}
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		c.hc = &hc
	} else {
		c.hc = defaultHTTPClient()
	}
	// A redirect could carry the bearer token elsewhere; an answer
	// redirecting is unexpected and reported as such.
	c.hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// defaultHTTPClient returns a client with connection, TLS and header
// timeouts; the call's context bounds the rest.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = DefaultTimeout
	t.MaxIdleConnsPerHost = 4
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// checkTenant accepts a GUID or a domain name usable as a path segment.
func checkTenant(t string) error {
	if t == "" {
		return fmt.Errorf("%w: tenant id must be set", ErrInvalid)
	}
	switch strings.ToLower(t) {
	case "common", "organizations", "consumers":
		return fmt.Errorf("%w: tenant id %q is not a tenant; the client-credentials grant needs the tenant's id or domain", ErrInvalid, t)
	}
	if len(t) > 253 {
		return fmt.Errorf("%w: tenant id is longer than 253 characters", ErrInvalid)
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("%w: tenant id %q must be a GUID or a domain name", ErrInvalid, t)
		}
	}
	if strings.HasPrefix(t, ".") || strings.Contains(t, "..") {
		return fmt.Errorf("%w: tenant id %q must be a GUID or a domain name", ErrInvalid, t)
	}
	return nil
}

// baseURL checks an absolute http(s) base URL and returns it without a
// trailing slash. Plain http is allowed only for loopback hosts.
func baseURL(what, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: %s %q must be an absolute http(s) URL", ErrInvalid, what, raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("%w: %s %q has no host", ErrInvalid, what, raw)
	case u.User != nil:
		return nil, fmt.Errorf("%w: %s must not contain user information", ErrInvalid, what)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("%w: %s %q must not have a query or fragment", ErrInvalid, what, raw)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return nil, fmt.Errorf("%w: %s %q must use https (http only for localhost)", ErrInvalid, what, raw)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// isLoopback reports whether host is localhost, in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Error is a failed call. It never contains the client secret or the
// access token.
type Error struct {
	// Step is StepToken or StepGroups.
	Step string
	// Status is the HTTP status of the answer, 0 if none arrived.
	Status int
	// Code is the AAD "error" (such as invalid_client) or the Graph
	// error.code (such as Authorization_RequestDenied).
	Code string
	// Message is the first line of the AAD error_description (starting
	// with its AADSTS code) or the Graph error.message, cut to 200 bytes.
	Message string
	// RequestID is the AAD trace_id or the Graph innerError request-id.
	RequestID string
	// CorrelationID is the AAD correlation_id or the Graph innerError
	// client-request-id.
	CorrelationID string
	// Kind is the sentinel error classifying the failure.
	Kind error
	// Err is the underlying cause, such as a network error; may be nil.
	Err error
}

// Error describes the failure for a log line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("graph: ")
	b.WriteString(e.Step)
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "graph: "))
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.Status)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %q", e.Message)
	}
	if e.RequestID != "" || e.CorrelationID != "" {
		fmt.Fprintf(&b, " (request-id %q, correlation-id %q)", e.RequestID, e.CorrelationID)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Kind and Err, so that errors.Is finds the sentinel and the
// cause (such as context.DeadlineExceeded).
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}
