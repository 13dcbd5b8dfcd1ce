package graph

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
	"time"
	"unicode/utf8"

	"github.com/engage-sso/engage-sso/internal/retry"
)

// groupType is the @odata.type of the entries MemberGroups keeps.
const groupType = "#microsoft.graph.group"

// defaultRetryAfter is the wait after a throttling answer without a usable
// Retry-After header.
const defaultRetryAfter = time.Second

// call is the state of one MemberGroups call shared by its requests.
type call struct {
	throttled int // throttling retries used
}

// answer is an HTTP answer read into memory.
type answer struct {
	status int
	header http.Header
	body   []byte
	// note says why a throttling answer was not retried.
	note string
}

// MemberGroups returns the object ids (lower-case GUIDs) of all groups the
// user is a member of, directly or through nested groups (security,
// Microsoft 365 and distribution groups alike), in Graph's order without
// duplicates. Directory roles, administrative units and entries without an
// @odata.type are left out. userObjectID is the user's object id
// (the objectidentifier claim), a GUID.
//
// The whole call, token fetch and retries included, ends within
// Config.Timeout. Every error is an *Error wrapping one of the sentinel
// errors; the caller must then refuse the sign-in.
func (c *Client) MemberGroups(ctx context.Context, userObjectID string) ([]string, error) {
	if !isGUID(userObjectID) {
		return nil, c.fail(&Error{Step: StepGroups, Kind: ErrInvalid,
			Err: fmt.Errorf("user object id %q is not a GUID", cut(userObjectID))})
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	next, err := url.Parse(c.graph.String() + "/v1.0/users/" + url.PathEscape(strings.ToLower(userObjectID)) +
		"/transitiveMemberOf?$select=id&$top=999")
	if err != nil {
		return nil, c.fail(&Error{Step: StepGroups, Kind: ErrInvalid, Err: err})
	}
	var (
		cl         call
		retried401 bool
		pages      int
		groups     = []string{}
		seen       = make(map[string]struct{})
	)
	for next != nil {
		if pages >= c.maxPages {
			return nil, c.fail(&Error{Step: StepGroups, Kind: ErrProtocol,
				Err: fmt.Errorf("more than %d pages of memberships", c.maxPages)})
		}
		tok, err := c.accessToken(ctx, &cl)
		if err != nil {
			return nil, err
		}
		link := next.String()
		a, err := c.do(ctx, &cl, StepGroups, func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept", "application/json")
			return req, nil
		}, MaxPageBytes, tok)
		if err != nil {
			return nil, err
		}
		if a.status == http.StatusUnauthorized && !retried401 {
			// The token may have been revoked or expired early: fetch a
			// new one and try once more.
			retried401 = true
			c.dropToken(tok)
			continue
		}
		if a.status != http.StatusOK {
			return nil, c.graphError(a, tok)
		}
		pages++
		var p struct {
			Value *[]struct {
				Type string `json:"@odata.type"`
				ID   string `json:"id"`
			} `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := json.Unmarshal(a.body, &p); err != nil {
			return nil, c.fail(&Error{Step: StepGroups, Status: a.status, Kind: ErrProtocol,
				Err: fmt.Errorf("decoding page %d: %w", pages, err)}, tok)
		}
		if p.Value == nil {
			return nil, c.fail(&Error{Step: StepGroups, Status: a.status, Kind: ErrProtocol,
				Err: fmt.Errorf("page %d has no value array", pages)}, tok)
		}
		for _, v := range *p.Value {
			if v.Type != groupType {
				continue
			}
			if !isGUID(v.ID) {
				return nil, c.fail(&Error{Step: StepGroups, Status: a.status, Kind: ErrProtocol,
					Err: fmt.Errorf("group id %q is not a GUID", cut(v.ID))}, tok)
			}
			id := strings.ToLower(v.ID)
			if _, dup := seen[id]; dup {
				continue
			}
			if len(groups) >= c.maxGroups {
				return nil, c.fail(&Error{Step: StepGroups, Status: a.status, Kind: ErrTooManyGroups,
					Err: fmt.Errorf("the user is in more than %d groups", c.maxGroups)}, tok)
			}
			seen[id] = struct{}{}
			groups = append(groups, id)
		}
		next = nil
		if p.NextLink != "" {
			if next, err = c.checkNextLink(p.NextLink); err != nil {
				return nil, c.fail(&Error{Step: StepGroups, Status: a.status, Kind: ErrProtocol, Err: err}, tok)
			}
		}
	}
	return groups, nil
}

// checkNextLink parses an @odata.nextLink and makes sure it stays on the
// configured Graph scheme, host and port, under {GraphURL}/v1.0/, so that
// the bearer token never goes anywhere else.
func (c *Client) checkNextLink(link string) (*url.URL, error) {
	u, err := url.Parse(link)
	if err != nil {
		return nil, fmt.Errorf("next link does not parse: %w", err)
	}
	if !u.IsAbs() || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("next link is not an absolute URL without user information and fragment")
	}
	if !strings.EqualFold(u.Scheme, c.graph.Scheme) || !strings.EqualFold(u.Hostname(), c.graph.Hostname()) ||
		port(u) != port(c.graph) {
		return nil, fmt.Errorf("next link leaves the Graph host: it points to %q", cut(u.Scheme+"://"+u.Host))
	}
	prefix := c.graph.Path + "/v1.0/"
	for _, p := range []string{u.Path, u.EscapedPath()} {
		if !strings.HasPrefix(p, prefix) || strings.Contains(p+"/", "/../") || strings.Contains(p+"/", "/./") {
			return nil, fmt.Errorf("next link path %q is not under %q", cut(u.EscapedPath()), prefix)
		}
	}
	return u, nil
}

// port returns the port of u, or the default port of its scheme.
func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// accessToken returns the cached access token, or fetches a new one.
// Concurrent callers share one fetch.
func (c *Client) accessToken(ctx context.Context, cl *call) (string, error) {
	if tok := c.cachedToken(); tok != "" {
		return tok, nil
	}
	select {
	case c.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", c.fail(&Error{Step: StepToken, Kind: ErrUnavailable,
			Err: fmt.Errorf("waiting for a token fetch: %w", ctx.Err())})
	}
	defer func() { <-c.fetching }()
	if tok := c.cachedToken(); tok != "" {
		return tok, nil
	}
	start := c.now()
	tok, lifetime, err := c.fetchToken(ctx, cl)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	c.token = tok
	c.refreshAt = start.Add(lifetime - TokenRefreshMargin)
	c.mu.Unlock()
	return tok, nil
}

// cachedToken returns the cached token unless it is within
// TokenRefreshMargin of its expiry; "" if there is none.
func (c *Client) cachedToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.now().Before(c.refreshAt) {
		return c.token
	}
	return ""
}

// dropToken forgets tok if it is still the cached token.
func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token == tok {
		c.token = ""
	}
}

// fetchToken runs the client-credentials grant and returns the access token
// and its lifetime.
func (c *Client) fetchToken(ctx context.Context, cl *call) (string, time.Duration, error) {
	form := url.Values{
		"client_id":     {c.clientID},
		"client_secret": {c.secret},
		"scope":         {c.scope},
		"grant_type":    {"client_credentials"},
	}.Encode()
	a, err := c.do(ctx, cl, StepToken, func(ctx context.Context) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		return req, nil
	}, MaxTokenBytes)
	if err != nil {
		return "", 0, err
	}
	if a.status != http.StatusOK {
		return "", 0, c.tokenError(a)
	}
	var tr struct {
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		AccessToken string          `json:"access_token"`
	}
	if err := json.Unmarshal(a.body, &tr); err != nil {
		// The body may hold the token: do not quote it.
		return "", 0, c.fail(&Error{Step: StepToken, Status: a.status, Kind: ErrProtocol,
			Err: errors.New("decoding the token response: malformed JSON")})
	}
	bad := func(why string) error {
		return c.fail(&Error{Step: StepToken, Status: a.status, Kind: ErrProtocol,
			Err: errors.New("token response: " + why)}, tr.AccessToken)
	}
	if !strings.EqualFold(tr.TokenType, "Bearer") {
		return "", 0, bad(fmt.Sprintf("token_type %q is not Bearer", cut(tr.TokenType)))
	}
	if tr.AccessToken == "" || !isTokenChars(tr.AccessToken) {
		return "", 0, bad("access_token is empty or has characters not allowed in a header")
	}
	secs, err := strconv.ParseInt(strings.Trim(string(tr.ExpiresIn), `"`), 10, 64)
	if err != nil || secs <= 0 || secs > 7*24*3600 {
		return "", 0, bad(fmt.Sprintf("expires_in %q is not a positive number of seconds", cut(string(tr.ExpiresIn))))
	}
	return tr.AccessToken, time.Duration(secs) * time.Second, nil
}

// isTokenChars reports whether tok is visible ASCII without spaces.
func isTokenChars(tok string) bool {
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] >= 0x7f {
			return false
		}
	}
	return true
}

// tokenError turns a refusal of the token endpoint into an *Error.
func (c *Client) tokenError(a answer) error {
	var ae struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
		ErrorCodes       []int  `json:"error_codes"`
		TraceID          string `json:"trace_id"`
		CorrelationID    string `json:"correlation_id"`
	}
	_ = json.Unmarshal(a.body, &ae) // a body that is not AAD's leaves the fields empty
	msg := firstLine(ae.ErrorDescription)
	if !strings.HasPrefix(msg, "AADSTS") && len(ae.ErrorCodes) > 0 {
		msg = strings.TrimSuffix(fmt.Sprintf("AADSTS%d: %s", ae.ErrorCodes[0], msg), ": ")
	}
	e := &Error{
		Step:          StepToken,
		Status:        a.status,
		Code:          ae.Error,
		Message:       msg,
		RequestID:     first(ae.TraceID, a.header.Get("x-ms-request-id")),
		CorrelationID: first(ae.CorrelationID, a.header.Get("client-request-id")),
	}
	switch {
	case a.status == http.StatusTooManyRequests || a.status >= 500 || ae.Error == "temporarily_unavailable":
		e.Kind = ErrUnavailable
	case a.status == http.StatusBadRequest || a.status == http.StatusUnauthorized ||
		a.status == http.StatusForbidden || (a.status >= 400 && ae.Error != ""):
		e.Kind = ErrCredentials
	default:
		e.Kind = ErrProtocol
	}
	if a.note != "" {
		e.Err = errors.New(a.note)
	}
	return c.fail(e)
}

// graphError turns a Graph answer other than 200 into an *Error.
func (c *Client) graphError(a answer, tok string) error {
	var ge struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError struct {
				RequestID       string `json:"request-id"`
				ClientRequestID string `json:"client-request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	_ = json.Unmarshal(a.body, &ge) // a body that is not Graph's leaves the fields empty
	e := &Error{
		Step:          StepGroups,
		Status:        a.status,
		Code:          ge.Error.Code,
		Message:       firstLine(ge.Error.Message),
		RequestID:     first(ge.Error.InnerError.RequestID, a.header.Get("request-id")),
		CorrelationID: first(ge.Error.InnerError.ClientRequestID, a.header.Get("client-request-id")),
	}
	switch {
	case a.status == http.StatusUnauthorized:
		e.Kind = ErrCredentials
		e.Err = errors.New("refused a freshly issued access token")
	case a.status == http.StatusForbidden || e.Code == "Authorization_RequestDenied":
		e.Kind = ErrForbidden
	case e.Code == "Request_ResourceNotFound" || e.Code == "ResourceNotFound":
		e.Kind = ErrUserNotFound
	case a.status == http.StatusTooManyRequests || a.status >= 500:
		e.Kind = ErrUnavailable
	default:
		e.Kind = ErrProtocol
	}
	if a.note != "" {
		e.Err = errors.New(a.note)
	}
	return c.fail(e, tok)
}

// do sends the request build makes and reads the answer, retrying after
// throttling answers (429, 503, 504) while the call's retries and deadline
// allow. A success body longer than limit is an error. secrets are redacted
// from errors besides the client secret.
func (c *Client) do(ctx context.Context, cl *call, step string, build func(context.Context) (*http.Request, error),
	limit int64, secrets ...string) (answer, error) {
	for {
		req, err := build(ctx)
		if err != nil {
			return answer{}, c.fail(&Error{Step: step, Kind: ErrInvalid, Err: fmt.Errorf("building the request: %w", err)}, secrets...)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return answer{}, c.fail(&Error{Step: step, Kind: ErrUnavailable, Err: err}, secrets...)
		}
		a, err := readAnswer(resp, limit)
		if err != nil {
			kind := ErrUnavailable
			if errors.Is(err, errTooBig) {
				kind = ErrProtocol
			}
			return answer{}, c.fail(&Error{Step: step, Status: resp.StatusCode, Kind: kind, Err: err}, secrets...)
		}
		switch a.status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return a, nil
		}
		if cl.throttled >= MaxThrottleRetries {
			a.note = fmt.Sprintf("still throttled after %d retries", cl.throttled)
			return a, nil
		}
		wait := retryAfter(a.header)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			a.note = fmt.Sprintf("throttled; Retry-After %v does not fit before the deadline", wait)
			return a, nil
		}
		cl.throttled++
		if err := retry.Sleep(ctx, wait); err != nil {
			return answer{}, c.fail(&Error{Step: step, Status: a.status, Kind: ErrUnavailable,
				Err: fmt.Errorf("waiting to retry: %w", err)}, secrets...)
		}
	}
}

// errTooBig is the cause of an oversized answer.
var errTooBig = errors.New("response body too large")

// readAnswer reads and closes resp's body: up to limit bytes for a 2xx
// answer (more is an error), up to maxErrorBytes for others (the rest is
// ignored).
func readAnswer(resp *http.Response, limit int64) (answer, error) {
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !ok {
		limit = maxErrorBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return a, fmt.Errorf("reading the response: %w", err)
	}
	if int64(len(body)) > limit {
		if ok {
			return a, fmt.Errorf("%w: more than %d bytes", errTooBig, limit)
		}
		body = body[:limit]
	}
	a.body = body
	return a, nil
}

// retryAfter returns the wait a Retry-After header asks for, in seconds or
// as an HTTP date; defaultRetryAfter if it is missing or unusable.
func retryAfter(h http.Header) time.Duration {
	if d, ok := retry.ParseRetryAfter(h.Get("Retry-After"), time.Now()); ok {
		return d
	}
	return defaultRetryAfter
}

// fail cleans e's texts, taken from answers, of control characters, the
// client secret and the given tokens, cuts them to size and returns e.
func (c *Client) fail(e *Error, tokens ...string) *Error {
	secrets := append([]string{c.secret}, tokens...)
	clean := func(s string) string { return cut(redact(s, secrets)) }
	e.Code = clean(e.Code)
	e.Message = clean(e.Message)
	e.RequestID = clean(e.RequestID)
	e.CorrelationID = clean(e.CorrelationID)
	if e.Err != nil {
		if msg := e.Err.Error(); redact(msg, secrets) != msg {
			e.Err = &redacted{msg: redact(msg, secrets), err: e.Err}
		}
	}
	return e
}

// redacted is an error whose text had a secret taken out.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// redact replaces every non-empty secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[REDACTED]")
		}
	}
	return s
}

// cut replaces control characters by spaces, trims s and cuts it to
// maxMessage bytes at a character boundary.
func cut(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) <= maxMessage {
		return s
	}
	i := maxMessage
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// firstLine returns the first line of an AAD or Graph message, without
// the " Trace ID: …" tail AAD sometimes puts on the same line.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, " Trace ID: "); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// first returns the first non-empty string.
func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
