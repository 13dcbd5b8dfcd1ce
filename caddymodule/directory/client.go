package directory

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/engage-sso/engage-sso/internal/retry"
)

const (
	// maxErrorBody is how much of an error answer is read for its code and
	// message.
	maxErrorBody = 64 << 10
	// maxMessage is the longest hook error message kept, in bytes.
	maxMessage = 200
)

// call is one operation on the hook.
type call struct {
	op             string
	method         string
	path           string // below the base URL, already escaped
	query          url.Values
	body           []byte // JSON; nil for none
	idempotencyKey string
	ok             []int // statuses meaning success
	out            any   // where a success body is decoded; nil to discard it

	// goneOnRetry makes a 404 a success after an attempt whose outcome is
	// unknown: that attempt may have deleted the user.
	goneOnRetry bool
}

// result is the outcome of one attempt.
type result struct {
	status     int
	err        *Error
	retry      bool          // the failure is transient
	retryAfter time.Duration // the hook's Retry-After, if any
}

// do runs cl, retrying transient failures, and returns the status of the
// last answer. The error, if any, is an *Error.
func (c *Client) do(ctx context.Context, cl *call) (int, error) {
	var last result
	uncertain := false // an earlier attempt may have taken effect
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			wait := c.backoff(attempt)
			switch {
			case last.retryAfter > MaxRetryAfter:
				last.err.note(fmt.Sprintf("hook asked to retry after %s, longer than %s", last.retryAfter, MaxRetryAfter))
				return last.status, last.err
			case last.retryAfter > 0:
				wait = last.retryAfter
			}
			if err := c.sleep(ctx, wait); err != nil {
				return last.status, stopped(cl.op, last.status, err)
			}
		}
		start := time.Now()
		last = c.attempt(ctx, cl)
		if c.observe != nil {
			var err error
			if last.err != nil {
				err = last.err
			}
			c.observe(cl.op, last.status, err, time.Since(start))
		}
		switch {
		case last.err == nil:
			return last.status, nil
		case cl.goneOnRetry && uncertain && last.status == http.StatusNotFound:
			return last.status, nil
		case !last.retry:
			return last.status, last.err
		case ctx.Err() != nil:
			return last.status, stopped(cl.op, last.status, ctx.Err())
		case attempt >= c.maxAttempts:
			if attempt > 1 {
				last.err.note(fmt.Sprintf("gave up after %d attempts", attempt))
			}
			return last.status, last.err
		}
		uncertain = true
	}
}

// note adds a remark to the error's cause.
func (e *Error) note(msg string) {
	if e.Err == nil {
		e.Err = errors.New(msg)
		return
	}
	e.Err = fmt.Errorf("%w (%s)", e.Err, msg)
}

// stopped is the error of a call whose context ended: ErrUnavailable, and
// the context's error.
func stopped(op string, status int, cause error) error {
	return &Error{Op: op, Status: status, Kind: ErrUnavailable, Err: cause}
}

// attempt makes one request.
func (c *Client) attempt(ctx context.Context, cl *call) result {
	fail := func(status int, kind, cause error) result {
		return result{status: status, err: &Error{Op: cl.op, Status: status, Kind: kind, Err: cause}}
	}
	tok, err := c.token(ctx)
	if err != nil {
		return fail(0, nil, fmt.Errorf("getting bearer token: %w", err))
	}
	if tok == "" {
		return fail(0, nil, errors.New("getting bearer token: empty token"))
	}

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := c.base + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, target, body)
	if err != nil {
		return fail(0, ErrInvalid, fmt.Errorf("building request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "engage-sso")
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if cl.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", cl.idempotencyKey)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		r := fail(0, ErrUnavailable, transportError(err, c.timeout, actx))
		r.retry = true
		return r
	}
	defer resp.Body.Close()

	if slices.Contains(cl.ok, resp.StatusCode) {
		data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
		switch {
		case err != nil:
			r := fail(resp.StatusCode, ErrUnavailable, fmt.Errorf("reading answer: %w", transportError(err, c.timeout, actx)))
			r.retry = true
			return r
		case len(data) > MaxResponseSize:
			return fail(resp.StatusCode, ErrProtocol, fmt.Errorf("answer larger than %d bytes", MaxResponseSize))
		case cl.out == nil || resp.StatusCode == http.StatusNoContent:
			return result{status: resp.StatusCode}
		}
		if err := json.Unmarshal(data, cl.out); err != nil {
			return fail(resp.StatusCode, ErrProtocol, fmt.Errorf("decoding answer: %w", err))
		}
		return result{status: resp.StatusCode}
	}

	// A failure: read what the hook says about it, within reason.
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	code, msg := parseErrorBody(data, tok)
	r := fail(resp.StatusCode, classify(resp.StatusCode), nil)
	r.err.Code, r.err.Message = code, msg
	if r.err.Kind == ErrUnavailable {
		r.retry = true
		r.retryAfter = c.retryAfter(resp.Header.Get("Retry-After"))
	}
	if r.err.Kind == ErrProtocol {
		r.err.Err = fmt.Errorf("unexpected status %s", resp.Status)
	}
	return r
}

// classify returns the sentinel error of a failure status.
func classify(status int) error {
	switch {
	case status == http.StatusNotFound || status == http.StatusGone:
		return ErrNotFound
	case status == http.StatusConflict:
		return ErrConflict
	case status == http.StatusBadRequest || status == http.StatusUnprocessableEntity:
		return ErrInvalid
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ErrUnauthorized
	case status == http.StatusTooManyRequests || status >= 500 && status != http.StatusNotImplemented:
		return ErrUnavailable
	}
	return ErrProtocol
}

// transportError returns the cause of a failed exchange without the
// request URL (which holds the lookup's query), naming a timeout of the
// attempt as such.
func transportError(err error, timeout time.Duration, actx context.Context) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("attempt timed out after %s: %w", timeout, err)
	}
	return err
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date. It
// returns 0 when there is none or it cannot be parsed.
func (c *Client) retryAfter(v string) time.Duration {
	d, _ := retry.ParseRetryAfter(v, c.now())
	return d
}

// parseErrorBody returns the code and message of an error body, sanitised:
// a code that is not a short identifier is dropped, the message is cut to
// maxMessage bytes and never contains the bearer token.
func parseErrorBody(data []byte, tok string) (code, msg string) {
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &body) != nil {
		return "", ""
	}
	code, msg = body.Error.Code, body.Error.Message
	if !validCode(code) {
		code = ""
	}
	if tok != "" {
		msg = strings.ReplaceAll(msg, tok, "[token]")
	}
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return code, strings.ToValidUTF8(msg, "\uFFFD")
}

// validCode reports whether s looks like an error code: 1 to 64 of a-z, 0-9
// and '_'.
func validCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
