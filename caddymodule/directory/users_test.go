package directory

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	t.Parallel()
	tok := func(context.Context) (string, error) { return "t", nil }
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"ok", Config{BaseURL: "https://engage.internal/sso-hook/", Token: tok}, ""},
		{"http", Config{BaseURL: "http://localhost:9000/hook", Token: tok}, ""},
		{"empty URL", Config{Token: tok}, "not an absolute"},
		{"relative URL", Config{BaseURL: "/hook", Token: tok}, "not an absolute"},
		{"other scheme", Config{BaseURL: "ftp://x/hook", Token: tok}, "not an absolute"},
		{"query", Config{BaseURL: "https://x/hook?a=1", Token: tok}, "no query"},
		{"user info", Config{BaseURL: "https://u:p@x/hook", Token: tok}, "user info"},
		{"bad URL", Config{BaseURL: "https://x/%zz", Token: tok}, "parsing base URL"},
		{"no token", Config{BaseURL: "https://x/hook"}, "no bearer token source"},
		{"negative timeout", Config{BaseURL: "https://x/hook", Token: tok, Timeout: -1}, "negative timeout"},
		{"negative attempts", Config{BaseURL: "https://x/hook", Token: tok, MaxAttempts: -1}, "negative max attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || c == nil {
					t.Fatalf("New(%q) = %v, %v; want a client", tt.cfg.BaseURL, c, err)
				}
				if strings.HasSuffix(c.base, "/") {
					t.Errorf("base = %q; want no trailing slash", c.base)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%q) error = %v; want one mentioning %q", tt.cfg.BaseURL, err, tt.wantErr)
			}
		})
	}
}

// TestOperations checks the request each operation sends and what it makes
// of a successful answer.
func TestOperations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		call       func(*Client) (any, error)
		status     int
		answer     string
		wantMethod string
		wantPath   string
		wantQuery  string
		wantBody   string // JSON, compared as values; "" for no body
		wantKey    bool   // an Idempotency-Key is sent
		want       any
	}{
		{
			name:   "find by email",
			call:   func(c *Client) (any, error) { return c.FindByEmail(context.Background(), "acme", "ada@example.com") },
			status: 200, answer: `{"users":[` + adaJSON + `]}`,
			wantMethod: "GET", wantPath: "/hook/users", wantQuery: "company=acme&email=ada%40example.com",
			want: &ada,
		},
		{
			name:   "find by external id",
			call:   func(c *Client) (any, error) { return c.FindByExternalID(context.Background(), "acme", "oid-1") },
			status: 200, answer: `{"users":[` + adaJSON + `],"next_cursor":""}`,
			wantMethod: "GET", wantPath: "/hook/users", wantQuery: "company=acme&external_id=oid-1",
			want: &ada,
		},
		{
			name:       "get",
			call:       func(c *Client) (any, error) { return c.Get(context.Background(), "u1") },
			status:     200,
			answer:     adaJSON,
			wantMethod: "GET", wantPath: "/hook/users/u1",
			want: &ada,
		},
		{
			name: "create",
			call: func(c *Client) (any, error) {
				u := ada
				u.ID = "ignored"
				return c.Create(context.Background(), u)
			},
			status: 201, answer: adaJSON,
			wantMethod: "POST", wantPath: "/hook/users", wantKey: true,
			wantBody: `{"email":"Ada@Example.com","given_name":"Ada","family_name":"Lovelace",` +
				`"display_name":"Ada Lovelace","role":"supervisor","active":true,"company":"acme",` +
				`"external_id":"oid-1","provider":"acme-azure"}`,
			want: &ada,
		},
		{
			name:   "create replayed",
			call:   func(c *Client) (any, error) { return c.Create(context.Background(), ada) },
			status: 200, answer: adaJSON,
			wantMethod: "POST", wantPath: "/hook/users", wantKey: true,
			wantBody: `{"email":"Ada@Example.com","given_name":"Ada","family_name":"Lovelace",` +
				`"display_name":"Ada Lovelace","role":"supervisor","active":true,"company":"acme",` +
				`"external_id":"oid-1","provider":"acme-azure"}`,
			want: &ada,
		},
		{
			name: "update",
			call: func(c *Client) (any, error) {
				role, active := RoleSupervisor, false
				return c.Update(context.Background(), "u1", Patch{Role: &role, Active: &active})
			},
			status: 200, answer: adaJSON,
			wantMethod: "PATCH", wantPath: "/hook/users/u1", wantBody: `{"role":"supervisor","active":false}`,
			want: &ada,
		},
		{
			name:   "deactivate",
			call:   func(c *Client) (any, error) { return nil, c.Deactivate(context.Background(), "a/b c") },
			status: 200, answer: adaJSON,
			wantMethod: "POST", wantPath: "/hook/users/a%2Fb%20c/deactivate",
		},
		{
			name:   "deactivate no content",
			call:   func(c *Client) (any, error) { return nil, c.Deactivate(context.Background(), "u1") },
			status: 204, wantMethod: "POST", wantPath: "/hook/users/u1/deactivate",
		},
		{
			name:   "delete",
			call:   func(c *Client) (any, error) { return nil, c.Delete(context.Background(), "u1") },
			status: 204, wantMethod: "DELETE", wantPath: "/hook/users/u1",
		},
		{
			name: "list first page",
			call: func(c *Client) (any, error) {
				users, next, err := c.List(context.Background(), "acme", "", 0)
				return []any{users, next}, err
			},
			status: 200, answer: `{"users":[` + adaJSON + `],"next_cursor":"c2"}`,
			wantMethod: "GET", wantPath: "/hook/users", wantQuery: "company=acme&limit=100",
			want: []any{[]User{ada}, "c2"},
		},
		{
			name: "list last page",
			call: func(c *Client) (any, error) {
				users, next, err := c.List(context.Background(), "acme", "c2", 2)
				return []any{users, next}, err
			},
			status: 200, answer: `{"users":[]}`,
			wantMethod: "GET", wantPath: "/hook/users", wantQuery: "company=acme&cursor=c2&limit=2",
			want: []any{[]User{}, ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, tt.status, tt.answer) })
			c, _, _ := testClient(t, hook.srv.URL+"/hook/", nil)
			got, err := tt.call(c)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s = %#v; want %#v", tt.name, got, tt.want)
			}
			reqs := hook.requests()
			if len(reqs) != 1 {
				t.Fatalf("%s sent %d requests; want 1", tt.name, len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.wantMethod || r.Path != tt.wantPath || r.RawQuery != tt.wantQuery {
				t.Errorf("request = %s %s?%s; want %s %s?%s", r.Method, r.Path, r.RawQuery, tt.wantMethod, tt.wantPath, tt.wantQuery)
			}
			if r.Auth != "Bearer "+testToken {
				t.Errorf("Authorization = %q; want the bearer token", r.Auth)
			}
			if (r.IdempotencyKey != "") != tt.wantKey {
				t.Errorf("Idempotency-Key = %q; want one: %v", r.IdempotencyKey, tt.wantKey)
			}
			if tt.wantBody == "" {
				if r.Body != "" {
					t.Errorf("body = %q; want none", r.Body)
				}
				return
			}
			if r.ContentType != "application/json" {
				t.Errorf("Content-Type = %q; want application/json", r.ContentType)
			}
			var gotBody, wantBody any
			if err := json.Unmarshal([]byte(r.Body), &gotBody); err != nil {
				t.Fatalf("body %q: %v", r.Body, err)
			}
			_ = json.Unmarshal([]byte(tt.wantBody), &wantBody)
			if !reflect.DeepEqual(gotBody, wantBody) {
				t.Errorf("body = %s; want %s", r.Body, tt.wantBody)
			}
		})
	}
}

// TestArgumentsChecked: calls that cannot be right are refused without a
// request.
func TestArgumentsChecked(t *testing.T) {
	t.Parallel()
	hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, 500, "") })
	c, _, _ := testClient(t, hook.srv.URL, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"find by email without company": func() error { _, err := c.FindByEmail(ctx, "", "a@b.c"); return err },
		"find by email without email":   func() error { _, err := c.FindByEmail(ctx, "acme", ""); return err },
		"find by external id without id": func() error {
			_, err := c.FindByExternalID(ctx, "acme", "")
			return err
		},
		"get without id":           func() error { _, err := c.Get(ctx, ""); return err },
		"create without email":     func() error { _, err := c.Create(ctx, User{Company: "acme", Role: RoleAgent}); return err },
		"create without company":   func() error { _, err := c.Create(ctx, User{Email: "a@b.c", Role: RoleAgent}); return err },
		"create without role":      func() error { _, err := c.Create(ctx, User{Email: "a@b.c", Company: "acme"}); return err },
		"update without id":        func() error { _, err := c.Update(ctx, "", Patch{}); return err },
		"deactivate without id":    func() error { return c.Deactivate(ctx, "") },
		"delete without id":        func() error { return c.Delete(ctx, "") },
		"list without company":     func() error { _, _, err := c.List(ctx, "", "", 0); return err },
		"list with negative limit": func() error { _, _, err := c.List(ctx, "acme", "", -1); return err },
		"list with huge limit":     func() error { _, _, err := c.List(ctx, "acme", "", MaxListLimit+1); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: error = %v; want ErrInvalid", name, err)
		}
	}
	if n := len(hook.requests()); n != 0 {
		t.Errorf("%d requests sent; want none", n)
	}
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, 201, adaJSON) })
	c, _, _ := testClient(t, hook.srv.URL, nil)
	for range 3 {
		if _, err := c.Create(context.Background(), ada); err != nil {
			t.Fatalf("Create: %v", err)
		}
	}
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for _, r := range hook.requests() {
		if !uuid.MatchString(r.IdempotencyKey) {
			t.Errorf("Idempotency-Key = %q; want a UUIDv4", r.IdempotencyKey)
		}
		if seen[r.IdempotencyKey] {
			t.Errorf("Idempotency-Key %q sent by two calls", r.IdempotencyKey)
		}
		seen[r.IdempotencyKey] = true
	}
}

// TestBadAnswers: answers outside the contract are protocol errors, never a
// user.
func TestBadAnswers(t *testing.T) {
	t.Parallel()
	other := strings.Replace(adaJSON, `"company":"acme"`, `"company":"globex"`, 1)
	tests := []struct {
		name   string
		call   func(*Client) error
		status int
		answer string
		want   error
	}{
		{"find: two users", findEmail, 200, `{"users":[` + adaJSON + `,` + adaJSON + `]}`, ErrProtocol},
		{"find: other company", findEmail, 200, `{"users":[` + other + `]}`, ErrProtocol},
		{"find: other email", func(c *Client) error {
			_, err := c.FindByEmail(context.Background(), "acme", "bob@example.com")
			return err
		}, 200, `{"users":[` + adaJSON + `]}`, ErrProtocol},
		{"find: other external id", func(c *Client) error {
			_, err := c.FindByExternalID(context.Background(), "acme", "oid-2")
			return err
		}, 200, `{"users":[` + adaJSON + `]}`, ErrProtocol},
		{"find: user without id", findEmail, 200, `{"users":[{"email":"ada@example.com","company":"acme"}]}`, ErrProtocol},
		{"find: malformed JSON", findEmail, 200, `{"users":[`, ErrProtocol},
		{"find: none", findEmail, 200, `{"users":[]}`, ErrNotFound},
		{"get: other user", func(c *Client) error { _, err := c.Get(context.Background(), "u2"); return err }, 200, adaJSON, ErrProtocol},
		{"create: other company", func(c *Client) error {
			u := ada
			u.Company = "globex"
			_, err := c.Create(context.Background(), u)
			return err
		}, 201, adaJSON, ErrProtocol},
		{"update: other user", func(c *Client) error { _, err := c.Update(context.Background(), "u2", Patch{}); return err }, 200, adaJSON, ErrProtocol},
		{"list: other company", func(c *Client) error {
			_, _, err := c.List(context.Background(), "acme", "", 0)
			return err
		}, 200, `{"users":[` + other + `]}`, ErrProtocol},
		{"list: cursor repeats", func(c *Client) error {
			_, _, err := c.List(context.Background(), "acme", "c1", 0)
			return err
		}, 200, `{"users":[],"next_cursor":"c1"}`, ErrProtocol},
		{"unexpected status", findEmail, 418, ``, ErrProtocol},
		{"not implemented", findEmail, 501, ``, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hook := newFakeHook(t, func(_ int, w http.ResponseWriter, _ *http.Request) { reply(w, tt.status, tt.answer) })
			c, _, _ := testClient(t, hook.srv.URL, nil)
			if err := tt.call(c); !errors.Is(err, tt.want) {
				t.Errorf("%s: error = %v; want %v", tt.name, err, tt.want)
			}
			if n := len(hook.requests()); n != 1 {
				t.Errorf("%s: %d requests; want 1 (no retry)", tt.name, n)
			}
		})
	}
}

func findEmail(c *Client) error {
	_, err := c.FindByEmail(context.Background(), "acme", "ada@example.com")
	return err
}
