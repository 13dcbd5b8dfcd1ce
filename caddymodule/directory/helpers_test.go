package directory

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// testToken is the bearer token of test clients: distinctive, so a test can
// prove it never appears in an error.
const testToken = "tok.SECRET-bearer-7f3a"

// request is what the fake hook saw of one request.
type request struct {
	Method, Path, RawQuery string
	Auth, IdempotencyKey   string
	ContentType            string
	Body                   string
}

// fakeHook is an httptest server whose answers a test scripts per attempt.
type fakeHook struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []request
}

// newFakeHook serves answer(n, w, r) for the n-th request (from 1).
func newFakeHook(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *fakeHook {
	t.Helper()
	f := &fakeHook{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, request{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), IdempotencyKey: r.Header.Get("Idempotency-Key"),
			ContentType: r.Header.Get("Content-Type"), Body: string(body),
		})
		n := len(f.reqs)
		f.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeHook) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// sleeps records the waits of a client instead of waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// attempt is one call of Config.Observe.
type attempt struct {
	op     string
	status int
	err    error
}

// testClient returns a client of url with zero backoff, recorded sleeps and
// attempts; edit changes the config first.
func testClient(t *testing.T, url string, edit func(*Config)) (*Client, *sleeps, func() []attempt) {
	t.Helper()
	s := &sleeps{}
	var mu sync.Mutex
	var attempts []attempt
	// A transport per client: a shared one could hold a kept-alive
	// connection to a closed test server whose port a new one reuses.
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	cfg := Config{
		BaseURL:    url,
		HTTPClient: &http.Client{Transport: transport},
		Token:      func(context.Context) (string, error) { return testToken, nil },
		Backoff:    func(int) time.Duration { return 0 },
		Sleep:      s.sleep,
		Timeout:    2 * time.Second,
		Now:        func() time.Time { return testNow },
		Observe: func(op string, status int, err error, _ time.Duration) {
			mu.Lock()
			attempts = append(attempts, attempt{op, status, err})
			mu.Unlock()
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, s, func() []attempt {
		mu.Lock()
		defer mu.Unlock()
		return append([]attempt(nil), attempts...)
	}
}

var testNow = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// reply writes a JSON answer.
func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// errorBody returns a contract error body.
func errorBody(code, msg string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `{"error":{"code":"` + r.Replace(code) + `","message":"` + r.Replace(msg) + `"}}`
}

const adaJSON = `{"id":"u1","email":"Ada@Example.com","given_name":"Ada","family_name":"Lovelace",` +
	`"display_name":"Ada Lovelace","role":"supervisor","active":true,"company":"acme",` +
	`"external_id":"oid-1","provider":"acme-azure"}`

var ada = User{
	ID: "u1", Email: "Ada@Example.com", GivenName: "Ada", FamilyName: "Lovelace",
	DisplayName: "Ada Lovelace", Role: RoleSupervisor, Active: true, Company: "acme",
	ExternalID: "oid-1", Provider: "acme-azure",
}
