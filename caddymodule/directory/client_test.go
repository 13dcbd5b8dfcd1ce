package directory

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/internal/retry"
)

// TestFailures scripts the hook's answers per attempt and checks what the
// client retries, how long it waits and what error it returns.
func TestFailures(t *testing.T) {
	t.Parallel()
	create := func(c *Client) error { _, err := c.Create(context.Background(), ada); return err }
	get := func(c *Client) error { _, err := c.Get(context.Background(), "u1"); return err }
	del := func(c *Client) error { return c.Delete(context.Background(), "u1") }
	type answer struct {
		status int
		body   string
		header http.Header
	}
	fail := func(status int, code string) answer { return answer{status: status, body: errorBody(code, "nope")} }
	tests := []struct {
		name       string
		call       func(*Client) error
		answers    []answer // per attempt; the last repeats
		wantErr    error    // nil for success
		wantStatus int      // of the *Error
		wantCode   string
		wantN      int             // requests
		wantSleeps []time.Duration // waits before retries
		wantMsg    string          // in the error text
	}{
		{
			name: "500 then 201", call: create,
			answers: []answer{fail(500, "internal"), {status: 201, body: adaJSON}},
			wantN:   2, wantSleeps: []time.Duration{0},
		},
		{
			name: "502 503 then 200", call: get,
			answers: []answer{{status: 502}, {status: 503}, {status: 200, body: adaJSON}},
			wantN:   3, wantSleeps: []time.Duration{0, 0},
		},
		{
			name: "500 every time", call: create,
			answers: []answer{fail(500, "internal")},
			wantErr: ErrUnavailable, wantStatus: 500, wantCode: "internal", wantN: 3,
			wantSleeps: []time.Duration{0, 0}, wantMsg: "gave up after 3 attempts",
		},
		{
			name: "409 is final", call: create,
			answers: []answer{fail(409, "duplicate_email")},
			wantErr: ErrConflict, wantStatus: 409, wantCode: "duplicate_email", wantN: 1,
		},
		{
			name: "404 is final", call: get,
			answers: []answer{fail(404, "not_found")},
			wantErr: ErrNotFound, wantStatus: 404, wantCode: "not_found", wantN: 1,
		},
		{
			name: "400 is final", call: create,
			answers: []answer{fail(400, "invalid")},
			wantErr: ErrInvalid, wantStatus: 400, wantCode: "invalid", wantN: 1,
		},
		{
			name: "422 is final", call: create,
			answers: []answer{fail(422, "invalid")},
			wantErr: ErrInvalid, wantStatus: 422, wantCode: "invalid", wantN: 1,
		},
		{
			name: "401 is final", call: get,
			answers: []answer{fail(401, "unauthorized")},
			wantErr: ErrUnauthorized, wantStatus: 401, wantCode: "unauthorized", wantN: 1,
		},
		{
			name: "429 with Retry-After seconds", call: get,
			answers: []answer{{status: 429, header: http.Header{"Retry-After": {"2"}}}, {status: 200, body: adaJSON}},
			wantN:   2, wantSleeps: []time.Duration{2 * time.Second},
		},
		{
			name: "503 with Retry-After date", call: get,
			answers: []answer{
				{status: 503, header: http.Header{"Retry-After": {testNow.Add(3 * time.Second).Format(http.TimeFormat)}}},
				{status: 200, body: adaJSON},
			},
			wantN: 2, wantSleeps: []time.Duration{3 * time.Second},
		},
		{
			name: "429 with Retry-After too long", call: get,
			answers: []answer{{status: 429, header: http.Header{"Retry-After": {"60"}}}},
			wantErr: ErrUnavailable, wantStatus: 429, wantN: 1, wantMsg: "retry after 1m0s",
		},
		{
			name: "429 with bad Retry-After", call: get,
			answers: []answer{{status: 429, header: http.Header{"Retry-After": {"soon"}}}, {status: 200, body: adaJSON}},
			wantN:   2, wantSleeps: []time.Duration{0},
		},
		{
			name: "redirect not followed", call: get,
			answers: []answer{{status: 302, header: http.Header{"Location": {"/elsewhere"}}}},
			wantErr: ErrProtocol, wantStatus: 302, wantN: 1, wantMsg: "unexpected status 302",
		},
		{
			name: "oversized body", call: get,
			answers: []answer{{status: 200, body: `{"id":"u1","email":"` + strings.Repeat("a", MaxResponseSize) + `"}`}},
			wantErr: ErrProtocol, wantStatus: 200, wantN: 1, wantMsg: "larger than",
		},
		{
			name: "delete: 500 then 404 means deleted", call: del,
			answers: []answer{fail(500, "internal"), fail(404, "not_found")},
			wantN:   2, wantSleeps: []time.Duration{0},
		},
		{
			name: "delete: 404 at once", call: del,
			answers: []answer{fail(404, "not_found")},
			wantErr: ErrNotFound, wantStatus: 404, wantCode: "not_found", wantN: 1,
		},
		{
			name: "token echoed and long message cut", call: get,
			answers: []answer{{status: 400, body: errorBody("invalid", "bad token "+testToken+" "+strings.Repeat("é", 300))}},
			wantErr: ErrInvalid, wantStatus: 400, wantCode: "invalid", wantN: 1, wantMsg: "bad token [token]",
		},
		{
			name: "odd code dropped", call: get,
			answers: []answer{{status: 400, body: errorBody("Bad Code", "x")}},
			wantErr: ErrInvalid, wantStatus: 400, wantCode: "", wantN: 1,
		},
		{
			name: "error body not JSON", call: get,
			answers: []answer{{status: 409, body: "<html>conflict</html>"}},
			wantErr: ErrConflict, wantStatus: 409, wantN: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hook := newFakeHook(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				a := tt.answers[min(n, len(tt.answers))-1]
				for k, v := range a.header {
					w.Header()[k] = v
				}
				reply(w, a.status, a.body)
			})
			c, s, _ := testClient(t, hook.srv.URL, nil)
			err := tt.call(c)
			checkErr(t, err, tt.wantErr, tt.wantStatus, tt.wantCode)
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tt.wantMsg)
			}
			if err != nil && len(err.Error()) > 400 {
				t.Errorf("error is %d bytes long; want the message cut", len(err.Error()))
			}
			reqs := hook.requests()
			if len(reqs) != tt.wantN {
				t.Errorf("%d requests; want %d", len(reqs), tt.wantN)
			}
			for i, r := range reqs {
				if r.Auth != "Bearer "+testToken {
					t.Errorf("request %d: Authorization = %q; want the bearer token", i+1, r.Auth)
				}
				if r.IdempotencyKey != reqs[0].IdempotencyKey {
					t.Errorf("request %d: Idempotency-Key = %q; want %q as in the first", i+1, r.IdempotencyKey, reqs[0].IdempotencyKey)
				}
			}
			if got := s.all(); !reflect.DeepEqual(got, tt.wantSleeps) && (len(got) != 0 || len(tt.wantSleeps) != 0) {
				t.Errorf("sleeps = %v; want %v", got, tt.wantSleeps)
			}
		})
	}
}

// checkErr checks that err wraps want (nil: no error) as an *Error with the
// given status and code, and never shows the bearer token.
func checkErr(t *testing.T, err, want error, status int, code string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("error = %v; want none", err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v; want %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if e.Status != status || e.Code != code {
		t.Errorf("error status, code = %d, %q; want %d, %q", e.Status, e.Code, status, code)
	}
	for _, sentinel := range []error{ErrNotFound, ErrConflict, ErrInvalid, ErrUnauthorized, ErrUnavailable, ErrProtocol} {
		if sentinel != want && errors.Is(err, sentinel) {
			t.Errorf("error %v also wraps %v", err, sentinel)
		}
	}
	if strings.Contains(err.Error(), testToken) || strings.Contains(e.Message, testToken) {
		t.Errorf("error %q shows the bearer token", err)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	hook := newFakeHook(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	c, _, attempts := testClient(t, hook.srv.URL, func(cfg *Config) {
		cfg.Timeout = 50 * time.Millisecond
		cfg.MaxAttempts = 2
	})
	start := time.Now()
	_, err := c.Get(context.Background(), "u1")
	checkErr(t, err, ErrUnavailable, 0, "")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "timed out after 50ms") {
		t.Errorf("error = %v; want a timeout of the attempt", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get took %s; want about 2×50ms", d)
	}
	if a := attempts(); len(a) != 2 || a[0].status != 0 || a[0].err == nil {
		t.Errorf("attempts = %+v; want 2 failed ones without status", a)
	}
}

// hangUp returns the URL of a server that closes every connection at once.
// (A closed server's port could be reused by another test's server.)
func hangUp(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestNetworkError(t *testing.T) {
	t.Parallel()
	url := hangUp(t)
	c, s, attempts := testClient(t, url, nil)
	_, err := c.Create(context.Background(), ada)
	checkErr(t, err, ErrUnavailable, 0, "")
	if msg := err.Error(); strings.Contains(msg, url) || strings.Contains(msg, "\n") ||
		!strings.HasPrefix(msg, "directory: create: ") || !strings.HasSuffix(msg, "(gave up after 3 attempts)") {
		t.Errorf("error = %q; want one line naming the operation and the attempts, without the URL", msg)
	}
	if a := attempts(); len(a) != DefaultMaxAttempts {
		t.Errorf("%d attempts; want %d", len(a), DefaultMaxAttempts)
	}
	if n := len(s.all()); n != DefaultMaxAttempts-1 {
		t.Errorf("%d waits; want %d", n, DefaultMaxAttempts-1)
	}
}

// TestCancelDuringBackoff: cancelling the context stops the wait before a
// retry at once.
func TestCancelDuringBackoff(t *testing.T) {
	t.Parallel()
	hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, 503, "") })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	entered := make(chan time.Duration, 1)
	c, _, attempts := testClient(t, hook.srv.URL, func(cfg *Config) {
		cfg.Backoff = func(int) time.Duration { return time.Hour }
		cfg.Sleep = func(ctx context.Context, d time.Duration) error {
			entered <- d
			return retry.Sleep(ctx, d) // the real timer
		}
	})
	go func() {
		<-entered
		cancel()
	}()
	start := time.Now()
	_, err := c.Get(ctx, "u1")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Get took %s after cancel; want it to stop at once", d)
	}
	checkErr(t, err, ErrUnavailable, 503, "")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v; want context.Canceled", err)
	}
	if n := len(attempts()); n != 1 {
		t.Errorf("%d attempts; want 1", n)
	}
}

// TestCancelledContext: no attempt is made with a context already done.
func TestCancelledContext(t *testing.T) {
	t.Parallel()
	hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, 200, adaJSON) })
	c, _, _ := testClient(t, hook.srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Get(ctx, "u1")
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("Get with cancelled context: error = %v; want ErrUnavailable and context.Canceled", err)
	}
	if n := len(hook.requests()); n != 0 {
		t.Errorf("%d requests; want none", n)
	}
}

func TestTokenError(t *testing.T) {
	t.Parallel()
	hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, 200, adaJSON) })
	boom := errors.New("no signing key")
	for name, tok := range map[string]func(context.Context) (string, error){
		"error": func(context.Context) (string, error) { return "", boom },
		"empty": func(context.Context) (string, error) { return "", nil },
	} {
		c, _, _ := testClient(t, hook.srv.URL, func(cfg *Config) { cfg.Token = tok })
		_, err := c.Get(context.Background(), "u1")
		if err == nil || !strings.Contains(err.Error(), "bearer token") {
			t.Errorf("token %s: error = %v; want one about the bearer token", name, err)
		}
		if name == "error" && !errors.Is(err, boom) {
			t.Errorf("token error: error = %v; want it to wrap %v", err, boom)
		}
	}
	if n := len(hook.requests()); n != 0 {
		t.Errorf("%d requests; want none without a token", n)
	}
}

func TestObserve(t *testing.T) {
	t.Parallel()
	hook := newFakeHook(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			reply(w, 500, "")
			return
		}
		reply(w, 200, `{"users":[]}`)
	})
	c, _, attempts := testClient(t, hook.srv.URL, nil)
	if _, err := c.FindByEmail(context.Background(), "acme", "nobody@example.com"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FindByEmail = %v; want ErrNotFound", err)
	}
	a := attempts()
	if len(a) != 2 || a[0].op != "find_by_email" || a[0].status != 500 || !errors.Is(a[0].err, ErrUnavailable) ||
		a[1].status != 200 || a[1].err != nil {
		t.Errorf("attempts = %+v; want a failed 500 then a successful 200", a)
	}
}

func TestDefaultBackoff(t *testing.T) {
	t.Parallel()
	c, err := New(Config{BaseURL: "http://x", Token: func(context.Context) (string, error) { return "t", nil }})
	if err != nil {
		t.Fatal(err)
	}
	ceilings := map[int]time.Duration{
		2: 100 * time.Millisecond, 3: 200 * time.Millisecond, 4: 400 * time.Millisecond,
		6: 1600 * time.Millisecond, 7: 2 * time.Second, 50: 2 * time.Second,
	}
	for attempt, ceiling := range ceilings {
		var largest time.Duration
		for range 200 {
			d := c.defaultBackoff(attempt)
			if d < 0 || d > ceiling {
				t.Fatalf("defaultBackoff(%d) = %s; want within [0, %s]", attempt, d, ceiling)
			}
			largest = max(largest, d)
		}
		if largest < ceiling/4 {
			t.Errorf("defaultBackoff(%d): largest of 200 draws %s; want jitter over [0, %s]", attempt, largest, ceiling)
		}
	}
}

func TestErrorText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "create", Status: 409, Code: "duplicate_email", Message: "taken", Kind: ErrConflict},
			`directory: create: status 409 (duplicate_email): "taken"`},
		{&Error{Op: "get", Kind: ErrNotFound}, "directory: get: user not found"},
		{&Error{Op: "get", Kind: ErrUnavailable, Err: errors.New("connection refused")},
			"directory: get: connection refused"},
		{&Error{Op: "list", Status: 200, Kind: ErrProtocol, Err: errors.New("bad")}, "directory: list: status 200: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q; want %q", got, tt.want)
		}
	}
}
