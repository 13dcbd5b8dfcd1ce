package graph

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/graph/graphtest"
)

// Real error bodies, as AAD and Graph send them.
const (
	forbiddenBody = `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2025-03-01T09:00:00","request-id":"0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0","client-request-id":"1a2b3c4d-4b5a-4978-8796-a5b4c3d2e1f0"}}}`
	expiredBody   = `{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired.","innerError":{"date":"2025-03-01T09:00:00","request-id":"2b3c4d5e-4b5a-4978-8796-a5b4c3d2e1f0","client-request-id":"2b3c4d5e-4b5a-4978-8796-a5b4c3d2e1f0"}}}`
	throttleBody  = `{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"date":"2025-03-01T09:00:00","request-id":"3c4d5e6f-4b5a-4978-8796-a5b4c3d2e1f0","client-request-id":"3c4d5e6f-4b5a-4978-8796-a5b4c3d2e1f0"}}}`
	badSecretBody = `{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9'.\r\nTrace ID: 7d1b2c3a-0f9e-4d8c-b7a6-958473625100\r\nCorrelation ID: 8e2c3d4b-1a0f-4e9d-c8b7-a69584736251\r\nTimestamp: 2025-03-01 09:00:00Z","error_codes":[7000215],"timestamp":"2025-03-01 09:00:00Z","trace_id":"7d1b2c3a-0f9e-4d8c-b7a6-958473625100","correlation_id":"8e2c3d4b-1a0f-4e9d-c8b7-a69584736251","error_uri":"https://login.microsoftonline.com/error?code=7000215"}`
)

// TestMemberGroups runs MemberGroups against the fake, scripted per case,
// and checks the result, the error and the requests made.
func TestMemberGroups(t *testing.T) {
	t.Parallel()
	retry0 := http.Header{"Retry-After": {"0"}}
	tests := []struct {
		name   string
		groups []string // of userOID; nil: the user is unknown
		setup  func(*graphtest.Server)
		config func(*Config)
		oid    string // default userOID

		want       []string // result on success; nil when an error is expected
		wantErr    error
		wantStatus int
		wantMsg    []string // in err.Error()
		wantToken  int      // token endpoint requests
		wantGraph  int      // Graph requests
		check      func(*testing.T, *Error)
	}{
		{
			name: "one page", groups: groupIDs(3),
			want: groupIDs(3), wantToken: 1, wantGraph: 1,
		},
		{
			name: "250 groups over three pages", groups: groupIDs(250),
			setup: func(s *graphtest.Server) { s.PageSize(100) },
			want:  groupIDs(250), wantToken: 1, wantGraph: 3,
		},
		{
			name: "page size one", groups: groupIDs(5),
			setup: func(s *graphtest.Server) { s.PageSize(1) },
			want:  groupIDs(5), wantToken: 1, wantGraph: 7, // 5 groups, a role and a unit
		},
		{
			name: "no groups", groups: []string{},
			want: []string{}, wantToken: 1, wantGraph: 1,
		},
		{
			name:   "duplicates and upper case folded",
			groups: []string{"AAAAAAAA-0000-4000-8000-00000000000A", "aaaaaaaa-0000-4000-8000-00000000000a", groupIDs(1)[0]},
			oid:    strings.ToUpper(userOID),
			want:   []string{"aaaaaaaa-0000-4000-8000-00000000000a", groupIDs(1)[0]}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "unknown user", groups: nil,
			wantErr: ErrUserNotFound, wantStatus: 404, wantMsg: []string{"Request_ResourceNotFound", "does not exist"},
			wantToken: 1, wantGraph: 1,
		},
		{
			name: "forbidden", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepGraph, 403, forbiddenBody) },
			wantErr: ErrForbidden, wantStatus: 403,
			wantMsg: []string{"graph: groups:", "HTTP 403", "Authorization_RequestDenied", "Insufficient privileges",
				"0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0", "1a2b3c4d-4b5a-4978-8796-a5b4c3d2e1f0", "GroupMember.Read.All"},
			wantToken: 1, wantGraph: 1,
		},
		{
			name: "request denied under another status", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepGraph, 400, forbiddenBody) },
			wantErr: ErrForbidden, wantStatus: 400, wantToken: 1, wantGraph: 1,
		},
		{
			name: "wrong secret", groups: groupIDs(1),
			config:  func(c *Config) { c.ClientSecret = "wrong-" + secret },
			wantErr: ErrCredentials, wantStatus: 401,
			wantMsg:   []string{"graph: token:", "invalid_client", "AADSTS7000215: Invalid client secret provided."},
			wantToken: 1, wantGraph: 0,
			check: func(t *testing.T, e *Error) {
				if !isGUID(e.RequestID) || !isGUID(e.CorrelationID) {
					t.Errorf("trace/correlation ids = %q, %q; want the GUIDs of the AAD body", e.RequestID, e.CorrelationID)
				}
				if strings.Contains(e.Message, "Trace ID") {
					t.Errorf("message %q holds more than the first line", e.Message)
				}
			},
		},
		{
			name: "unknown tenant", groups: groupIDs(1),
			config:  func(c *Config) { c.TenantID = "00000000-1111-4222-8333-444444444444" },
			wantErr: ErrCredentials, wantStatus: 400, wantMsg: []string{"invalid_request", "AADSTS90002"},
			wantToken: 1,
		},
		{
			name: "unknown application", groups: groupIDs(1),
			config:  func(c *Config) { c.ClientID = "99999999-1111-4222-8333-444444444444" },
			wantErr: ErrCredentials, wantStatus: 400, wantMsg: []string{"unauthorized_client", "AADSTS700016"},
			wantToken: 1,
		},
		{
			name: "token endpoint echoes the secret", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepToken, 401, graphtest.AADErrorBody("invalid_client", 7000215, "secret "+secret+" is wrong"))
			},
			wantErr: ErrCredentials, wantStatus: 401, wantMsg: []string{"[REDACTED]"}, wantToken: 1,
		},
		{
			name: "body without AADSTS prefix uses error_codes", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepToken, 400, `{"error":"invalid_scope","error_description":"bad scope","error_codes":[1002012]}`)
			},
			wantErr: ErrCredentials, wantMsg: []string{"AADSTS1002012: bad scope"}, wantToken: 1,
		},
		{
			name: "token endpoint fails", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepToken, 500, "<html>oops</html>") },
			wantErr: ErrUnavailable, wantStatus: 500, wantToken: 1,
		},
		{
			name: "token endpoint temporarily unavailable", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepToken, 400, graphtest.AADErrorBody("temporarily_unavailable", 50196, "The server is busy."))
			},
			wantErr: ErrUnavailable, wantToken: 1,
		},
		{
			name: "token endpoint throttles once", groups: groupIDs(2),
			setup: func(s *graphtest.Server) {
				s.FailWith(graphtest.StepToken, 429, retry0, graphtest.AADErrorBody("temporarily_unavailable", 50196, "Throttled."))
			},
			want: groupIDs(2), wantToken: 2, wantGraph: 1,
		},
		{
			name: "malformed token response", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepToken, 200, `{"access_token":"abc`) },
			wantErr: ErrProtocol, wantToken: 1,
		},
		{
			name: "token type not bearer", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepToken, 200, `{"token_type":"pop","expires_in":3599,"access_token":"abc"}`)
			},
			wantErr: ErrProtocol, wantMsg: []string{"token_type"}, wantToken: 1,
		},
		{
			name: "token without expiry", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepToken, 200, `{"token_type":"Bearer","access_token":"abc"}`)
			},
			wantErr: ErrProtocol, wantMsg: []string{"expires_in"}, wantToken: 1,
		},
		{
			name: "token with a space", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepToken, 200, `{"token_type":"Bearer","expires_in":3599,"access_token":"a b"}`)
			},
			wantErr: ErrProtocol, wantToken: 1,
		},
		{
			name: "401 once: new token and retry", groups: groupIDs(2),
			setup: func(s *graphtest.Server) { s.Fail(graphtest.StepGraph, 401, expiredBody) },
			want:  groupIDs(2), wantToken: 2, wantGraph: 2,
		},
		{
			name: "401 twice: credentials", groups: groupIDs(2),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepGraph, 401, expiredBody)
				s.Fail(graphtest.StepGraph, 401, expiredBody)
			},
			wantErr: ErrCredentials, wantStatus: 401, wantMsg: []string{"InvalidAuthenticationToken"},
			wantToken: 2, wantGraph: 2,
		},
		{
			name: "429 with Retry-After 0 then success", groups: groupIDs(2),
			setup: func(s *graphtest.Server) { s.FailWith(graphtest.StepGraph, 429, retry0, throttleBody) },
			want:  groupIDs(2), wantToken: 1, wantGraph: 2,
		},
		{
			name: "503 and 504 then success", groups: groupIDs(2),
			setup: func(s *graphtest.Server) {
				s.FailWith(graphtest.StepGraph, 503, retry0, "")
				s.FailWith(graphtest.StepGraph, 504, retry0, "")
			},
			want: groupIDs(2), wantToken: 1, wantGraph: 3,
		},
		{
			name: "429 three times", groups: groupIDs(2),
			setup: func(s *graphtest.Server) {
				for range 3 {
					s.FailWith(graphtest.StepGraph, 429, retry0, throttleBody)
				}
			},
			wantErr: ErrUnavailable, wantStatus: 429, wantMsg: []string{"TooManyRequests", "after 2 retries"},
			wantToken: 1, wantGraph: 3,
		},
		{
			name: "Retry-After beyond the deadline", groups: groupIDs(2),
			setup: func(s *graphtest.Server) {
				s.FailWith(graphtest.StepGraph, 429, http.Header{"Retry-After": {"3600"}}, throttleBody)
			},
			wantErr: ErrUnavailable, wantStatus: 429, wantMsg: []string{"does not fit"},
			wantToken: 1, wantGraph: 1,
		},
		{
			name: "proxy error page", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepGraph, 502, "<html><body>Bad Gateway</body></html>") },
			wantErr: ErrUnavailable, wantStatus: 502, wantToken: 1, wantGraph: 1,
		},
		{
			name: "bad request", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepGraph, 400, graphtest.GraphErrorBody("Request_UnsupportedQuery", "Unsupported query."))
			},
			wantErr: ErrProtocol, wantStatus: 400, wantMsg: []string{"Request_UnsupportedQuery"}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "malformed page", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepGraph, 200, `{"value":[{"id":`) },
			wantErr: ErrProtocol, wantMsg: []string{"decoding page 1"}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "page without value", groups: groupIDs(1),
			setup:   func(s *graphtest.Server) { s.Fail(graphtest.StepGraph, 200, `{"@odata.context":"x"}`) },
			wantErr: ErrProtocol, wantMsg: []string{"no value array"}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "group id not a GUID", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepGraph, 200, `{"value":[{"@odata.type":"#microsoft.graph.group","id":"../admins"}]}`)
			},
			wantErr: ErrProtocol, wantMsg: []string{"not a GUID"}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "oversized page", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				// Valid JSON: only the size limit can refuse it.
				s.Fail(graphtest.StepGraph, 200, strings.Repeat(" ", MaxPageBytes)+`{"value":[]}`)
			},
			wantErr: ErrProtocol, wantMsg: []string{"too large"}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "oversized error body is cut, not refused", groups: groupIDs(1),
			setup: func(s *graphtest.Server) {
				s.Fail(graphtest.StepGraph, 500, strings.Repeat("x", MaxPageBytes+10))
			},
			wantErr: ErrUnavailable, wantStatus: 500, wantToken: 1, wantGraph: 1,
		},
		{
			name: "more groups than MaxGroups", groups: groupIDs(11),
			config:  func(c *Config) { c.MaxGroups = 10 },
			wantErr: ErrTooManyGroups, wantMsg: []string{"more than 10 groups"}, wantToken: 1, wantGraph: 1,
		},
		{
			name: "exactly MaxGroups", groups: groupIDs(10),
			config: func(c *Config) { c.MaxGroups = 10 },
			want:   groupIDs(10), wantToken: 1, wantGraph: 1,
		},
		{
			name: "too many pages", groups: groupIDs(20),
			config:  func(c *Config) { c.MaxGroups = 100 }, // 11 pages at most
			setup:   func(s *graphtest.Server) { s.PageSize(1) },
			wantErr: ErrProtocol, wantMsg: []string{"more than 11 pages"}, wantToken: 1, wantGraph: 11,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			if tt.groups != nil {
				fake.SetGroups(userOID, tt.groups...)
			}
			if tt.setup != nil {
				tt.setup(fake)
			}
			c := newClient(t, fake, tt.config)
			oid := tt.oid
			if oid == "" {
				oid = userOID
			}
			got, err := c.MemberGroups(context.Background(), oid)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("MemberGroups: %v", err)
				}
				if got == nil || !slices.Equal(got, tt.want) {
					t.Errorf("groups = %v (%d), want %v (%d)", got, len(got), tt.want, len(tt.want))
				}
				for _, id := range got {
					if id == graphtest.DirectoryRoleID || id == graphtest.AdministrativeUnitID {
						t.Errorf("result holds non-group %s", id)
					}
				}
			} else {
				checkErr(t, err, tt.wantErr, tt.wantStatus, tt.wantMsg, tt.check)
				if got != nil {
					t.Errorf("groups = %v alongside an error", got)
				}
			}
			if tok, gr := fake.Calls(); tok != tt.wantToken || gr != tt.wantGraph {
				t.Errorf("calls: token %d, graph %d; want %d, %d", tok, gr, tt.wantToken, tt.wantGraph)
			}
		})
	}
}

// checkErr checks that err is an *Error of the wanted kind and status whose
// text holds the wanted parts and never the secret.
func checkErr(t *testing.T, err, kind error, status int, msgs []string, check func(*testing.T, *Error)) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q does not wrap %v", err, kind)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not an *Error", err)
	}
	if status != 0 && e.Status != status {
		t.Errorf("status = %d, want %d", e.Status, status)
	}
	text := err.Error()
	for _, m := range msgs {
		if !strings.Contains(text, m) {
			t.Errorf("error %q does not contain %q", text, m)
		}
	}
	if strings.Contains(text, secret) || strings.Contains(text, "s3cr3t") {
		t.Errorf("error %q contains the client secret", text)
	}
	if check != nil {
		check(t, e)
	}
}

// TestNextLinkConfinement checks that the bearer token follows
// @odata.nextLink only within the configured Graph base.
func TestNextLinkConfinement(t *testing.T) {
	t.Parallel()
	page := func(next string) string {
		return `{"value":[{"@odata.type":"#microsoft.graph.group","id":"77777777-7777-4777-8777-777777777777"}],"@odata.nextLink":"` + next + `"}`
	}
	const rest = "/v1.0/users/" + userOID + "/transitiveMemberOf?$select=id&$top=999"
	tests := []struct {
		name string
		next func(fake, other string) string
		ok   bool
	}{
		{"same host", func(fake, _ string) string { return fake + rest }, true},
		{"other port", func(_, other string) string { return other + rest }, false},
		{"other host name", func(fake, _ string) string { return strings.Replace(fake, "127.0.0.1", "localhost", 1) + rest }, false},
		{"other scheme", func(fake, _ string) string { return strings.Replace(fake, "http:", "https:", 1) + rest }, false},
		{"user information", func(fake, _ string) string { return strings.Replace(fake, "//", "//evil@", 1) + rest }, false},
		{"relative", func(string, string) string { return rest }, false},
		{"other version", func(fake, _ string) string { return fake + "/beta/users/" + userOID + "/transitiveMemberOf" }, false},
		{"dot segments", func(fake, _ string) string { return fake + "/v1.0/../beta/users/x" }, false},
		{"encoded dot segments", func(fake, _ string) string { return fake + "/v1.0/%2e%2e/beta/users/x" }, false},
		{"fragment", func(fake, _ string) string { return fake + rest + "#x" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			fake.SetGroups(userOID, groupIDs(2)...)
			other, hits := countingServer(t)
			fake.Fail(graphtest.StepGraph, 200, page(tt.next(fake.URL, other.URL)))
			c := newClient(t, fake, nil)
			got, err := c.MemberGroups(context.Background(), userOID)
			_, graphCalls := fake.Calls()
			if tt.ok {
				want := append([]string{"77777777-7777-4777-8777-777777777777"}, groupIDs(2)...)
				if err != nil || !slices.Equal(got, want) {
					t.Fatalf("MemberGroups = %v, %v; want %v", got, err, want)
				}
				if graphCalls != 2 {
					t.Errorf("graph calls = %d, want 2", graphCalls)
				}
			} else {
				checkErr(t, err, ErrProtocol, 200, []string{"next link"}, nil)
				if graphCalls != 1 {
					t.Errorf("graph calls = %d, want 1", graphCalls)
				}
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("the other server got %d requests", n)
			}
		})
	}
}

// TestRedirectNotFollowed checks that a redirect from Graph is an error and
// the bearer token does not follow it.
func TestRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.SetGroups(userOID, groupIDs(1)...)
	other, hits := countingServer(t)
	fake.FailWith(graphtest.StepGraph, http.StatusFound, http.Header{"Location": {other.URL + "/v1.0/users/x"}}, "")
	_, err := newClient(t, fake, nil).MemberGroups(context.Background(), userOID)
	checkErr(t, err, ErrProtocol, http.StatusFound, nil, nil)
	if n := hits.Load(); n != 0 {
		t.Errorf("the redirect target got %d requests", n)
	}
}

// TestTokenCache checks that a token is reused until TokenRefreshMargin
// before its expiry (3599 s) and fetched again after.
func TestTokenCache(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		advance   time.Duration // between the two calls
		wantToken int
	}{
		{"immediately", 0, 1},
		{"just before the margin", 3599*time.Second - TokenRefreshMargin - time.Second, 1},
		{"at the margin", 3599*time.Second - TokenRefreshMargin, 2},
		{"after expiry", 2 * time.Hour, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			fake.SetGroups(userOID, groupIDs(3)...)
			clk := newClock()
			c := newClient(t, fake, func(c *Config) { c.Now = clk.Now })
			for i := range 2 {
				if i == 1 {
					clk.Add(tt.advance)
				}
				got, err := c.MemberGroups(context.Background(), userOID)
				if err != nil || !slices.Equal(got, groupIDs(3)) {
					t.Fatalf("call %d: %v, %v", i+1, got, err)
				}
			}
			if tok, gr := fake.Calls(); tok != tt.wantToken || gr != 2 {
				t.Errorf("calls: token %d, graph %d; want %d, 2", tok, gr, tt.wantToken)
			}
		})
	}
}

// TestRevokedToken checks that a cached token Graph refuses is replaced
// within the same call.
func TestRevokedToken(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.SetGroups(userOID, groupIDs(2)...)
	c := newClient(t, fake, nil)
	for i := range 3 {
		if i == 1 {
			fake.RevokeTokens()
		}
		if _, err := c.MemberGroups(context.Background(), userOID); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
	}
	// Call 2 gets a 401 with the revoked token, fetches a new one and
	// retries; call 3 reuses the new one.
	if tok, gr := fake.Calls(); tok != 2 || gr != 4 {
		t.Errorf("calls: token %d, graph %d; want 2, 4", tok, gr)
	}
}

// TestConcurrentCalls checks that concurrent calls share one token fetch.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.SetGroups(userOID, groupIDs(150)...)
	c := newClient(t, fake, nil)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	results := make([][]string, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = c.MemberGroups(context.Background(), userOID) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || !slices.Equal(results[i], groupIDs(150)) {
			t.Errorf("call %d: %d groups, %v", i, len(results[i]), errs[i])
		}
	}
	if tok, gr := fake.Calls(); tok != 1 || gr != 2*n {
		t.Errorf("calls: token %d, graph %d; want 1, %d", tok, gr, 2*n)
	}
}

// TestInvalidUserObjectID checks that a user object id that is not a GUID
// is refused before any request.
func TestInvalidUserObjectID(t *testing.T) {
	t.Parallel()
	for _, oid := range []string{
		"", "not-a-guid", "../../../groups", "4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8f", "{4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8f9}",
		"4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8fg", "4a9b6c1d2e3f405182932a4b5c6d7e8f9aa", "4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8f9/x",
		"user@example.com",
	} {
		t.Run(oid, func(t *testing.T) {
			t.Parallel()
			fake := newFake(t)
			_, err := newClient(t, fake, nil).MemberGroups(context.Background(), oid)
			checkErr(t, err, ErrInvalid, 0, []string{"not a GUID"}, nil)
			if tok, gr := fake.Calls(); tok != 0 || gr != 0 {
				t.Errorf("calls: token %d, graph %d; want none", tok, gr)
			}
		})
	}
}

// TestDeadline checks that a hanging token endpoint or Graph ends the call
// at Config.Timeout or at the caller's deadline.
func TestDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hang     string // "token" or "graph"
		timeout  time.Duration
		ctx      time.Duration // caller's deadline; 0 for none
		wantStep string
	}{
		{"token endpoint hangs", "token", 100 * time.Millisecond, 0, StepToken},
		{"graph hangs", "graph", 100 * time.Millisecond, 0, StepGroups},
		{"caller's deadline is shorter", "graph", time.Minute, 100 * time.Millisecond, StepGroups},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				isToken := strings.HasSuffix(r.URL.Path, "/token")
				if isToken == (tt.hang == "token") {
					select {
					case <-r.Context().Done():
					case <-release:
					}
					return
				}
				_, _ = w.Write([]byte(`{"token_type":"Bearer","expires_in":3599,"access_token":"tok"}`))
			}))
			t.Cleanup(srv.Close)
			t.Cleanup(func() { close(release) })
			c, err := New(Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret,
				LoginURL: srv.URL, GraphURL: srv.URL, Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if tt.ctx != 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			start := time.Now()
			_, err = c.MemberGroups(ctx, userOID)
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("call took %v", d)
			}
			checkErr(t, err, ErrUnavailable, 0, nil, nil)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %q does not wrap context.DeadlineExceeded", err)
			}
			var e *Error
			if errors.As(err, &e) && e.Step != tt.wantStep {
				t.Errorf("step = %q, want %q", e.Step, tt.wantStep)
			}
		})
	}
}

// TestCanceledContext checks that a canceled caller sends nothing.
func TestCanceledContext(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.SetGroups(userOID, groupIDs(1)...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := newClient(t, fake, nil).MemberGroups(ctx, userOID)
	checkErr(t, err, ErrUnavailable, 0, nil, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %q does not wrap context.Canceled", err)
	}
}

// TestRetryAfter checks the reading of Retry-After.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value    string
		min, max time.Duration
	}{
		{"", defaultRetryAfter, defaultRetryAfter},
		{"0", 0, 0},
		{"3", 3 * time.Second, 3 * time.Second},
		{" 2 ", 2 * time.Second, 2 * time.Second},
		{"-1", defaultRetryAfter, defaultRetryAfter},
		{"soon", defaultRetryAfter, defaultRetryAfter},
		{"999999999", 24 * time.Hour, 24 * time.Hour},
		{time.Now().Add(time.Hour).UTC().Format(http.TimeFormat), 58 * time.Minute, time.Hour},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		if got := retryAfter(h); got < tt.min || got > tt.max {
			t.Errorf("retryAfter(%q) = %v, want in [%v, %v]", tt.value, got, tt.min, tt.max)
		}
	}
}

// TestFailCleansTexts checks that error texts lose the secret and tokens,
// control characters and excess length.
func TestFailCleansTexts(t *testing.T) {
	t.Parallel()
	c := &Client{secret: secret}
	tok := "eyJ0eXAi.access-token"
	cause := errors.New("bearer " + tok + " and " + secret)
	e := c.fail(&Error{
		Step:    StepGroups,
		Code:    "code\r\nInjected: yes",
		Message: strings.Repeat("é", 150) + secret,
		Err:     cause,
	}, tok)
	if !errors.Is(e, cause) {
		t.Error("the redacted cause no longer unwraps to the original")
	}
	text := e.Error()
	for _, bad := range []string{secret, tok, "\r", "\n"} {
		if strings.Contains(text, bad) {
			t.Errorf("error %q contains %q", text, bad)
		}
	}
	if len(e.Message) > maxMessage+len("…") {
		t.Errorf("message is %d bytes long", len(e.Message))
	}
	if !strings.Contains(e.Err.Error(), "[REDACTED]") {
		t.Errorf("cause %q not redacted", e.Err)
	}
}

// TestFirstLine checks the cutting of AAD descriptions.
func TestFirstLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"AADSTS7000215: Invalid client secret provided.\r\nTrace ID: x\r\nCorrelation ID: y", "AADSTS7000215: Invalid client secret provided."},
		{"AADSTS90002: Tenant 'x' not found. Trace ID: a Correlation ID: b", "AADSTS90002: Tenant 'x' not found."},
		{"  plain  ", "plain"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := firstLine(tt.in); got != tt.want {
			t.Errorf("firstLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestThrottleWaits checks that a retry waits as long as Retry-After asks.
func TestThrottleWaits(t *testing.T) {
	t.Parallel()
	fake := newFake(t)
	fake.SetGroups(userOID, groupIDs(1)...)
	fake.FailWith(graphtest.StepGraph, 429, http.Header{"Retry-After": {"1"}}, throttleBody)
	start := time.Now()
	got, err := newClient(t, fake, nil).MemberGroups(context.Background(), userOID)
	if err != nil || !slices.Equal(got, groupIDs(1)) {
		t.Fatalf("MemberGroups = %v, %v", got, err)
	}
	if d := time.Since(start); d < time.Second {
		t.Errorf("retried after %v, want at least 1s", d)
	}
}

// TestCheckNextLink checks next links against an https Graph base with a
// path, as behind a proxy.
func TestCheckNextLink(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"https://graph.example.com/graph", "https://graph.example.com:443/graph/"} {
		c, err := New(Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, GraphURL: base})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			link string
			ok   bool
		}{
			{"https://graph.example.com/graph/v1.0/users/x/transitiveMemberOf?$skiptoken=a", true},
			{"https://GRAPH.example.com:443/graph/v1.0/users/x", true},
			{"https://graph.example.com:8443/graph/v1.0/users/x", false},
			{"http://graph.example.com/graph/v1.0/users/x", false},
			{"https://graph.example.com/v1.0/users/x", false},
			{"https://graph.example.com/graph/v1.0", false},
			{"https://graph.example.com/graph/v1.0/./users", false},
			{"https://graph.example.com/graph/v1.0/users/..", false},
			{"https:graph.example.com/graph/v1.0/users", false},
			{"https://graph.example.com.evil/graph/v1.0/users/x", false},
			{"https://graph.example.com/graph/v1.0/%zz", false},
		}
		for _, tt := range tests {
			_, err := c.checkNextLink(tt.link)
			if (err == nil) != tt.ok {
				t.Errorf("base %s: checkNextLink(%q) = %v, want ok %v", base, tt.link, err, tt.ok)
			}
		}
	}
}
