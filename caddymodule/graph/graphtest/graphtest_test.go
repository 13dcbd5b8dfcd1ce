package graphtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

const (
	tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"
	secret   = "fake-secret"
	oid      = "4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8f9"
)

// send makes a request and returns the status and decoded JSON body.
func send(t *testing.T, method, u, contentType, auth, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", raw, err)
	}
	return resp.StatusCode, m
}

// tokenForm is a valid client-credentials request for s, changed by mod.
func tokenForm(s *Server, mod func(url.Values)) string {
	f := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {s.URL + "/.default"}}
	if mod != nil {
		mod(f)
	}
	return f.Encode()
}

// issue gets a token from s.
func issue(t *testing.T, s *Server) string {
	t.Helper()
	status, m := send(t, http.MethodPost, s.URL+"/"+tenant+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", "", tokenForm(s, nil))
	tok, _ := m["access_token"].(string)
	if status != 200 || tok == "" || m["token_type"] != "Bearer" || m["expires_in"] != float64(3599) || m["ext_expires_in"] != float64(3599) {
		t.Fatalf("token answer %d %v", status, m)
	}
	return tok
}

// TestToken checks the token endpoint's validation and AAD error shapes.
func TestToken(t *testing.T) {
	t.Parallel()
	const form = "application/x-www-form-urlencoded"
	tests := []struct {
		name        string
		method      string
		tenant      string
		contentType string
		mod         func(url.Values)
		wantStatus  int
		wantError   string
		wantAADSTS  float64
	}{
		{"valid", http.MethodPost, tenant, form, nil, 200, "", 0},
		{"tenant in upper case", http.MethodPost, strings.ToUpper(tenant), form, nil, 200, "", 0},
		{"unknown tenant", http.MethodPost, "contoso.com", form, nil, 400, "invalid_request", 90002},
		{"GET", http.MethodGet, tenant, "", nil, 405, "invalid_request", 900561},
		{"JSON body", http.MethodPost, tenant, "application/json", nil, 400, "invalid_request", 900144},
		{"no grant type", http.MethodPost, tenant, form, func(f url.Values) { f.Del("grant_type") }, 400, "invalid_request", 900144},
		{"password grant", http.MethodPost, tenant, form, func(f url.Values) { f.Set("grant_type", "password") }, 400, "unsupported_grant_type", 70003},
		{"unknown client", http.MethodPost, tenant, form, func(f url.Values) { f.Set("client_id", "x") }, 400, "unauthorized_client", 700016},
		{"no secret", http.MethodPost, tenant, form, func(f url.Values) { f.Del("client_secret") }, 401, "invalid_client", 7000216},
		{"wrong secret", http.MethodPost, tenant, form, func(f url.Values) { f.Set("client_secret", "nope") }, 401, "invalid_client", 7000215},
		{"wrong scope", http.MethodPost, tenant, form, func(f url.Values) { f.Set("scope", "https://graph.microsoft.com/.default") }, 400, "invalid_scope", 1002012},
		{"scope without .default", http.MethodPost, tenant, form, func(f url.Values) { f.Set("scope", "User.Read.All") }, 400, "invalid_scope", 1002012},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(t, tenant, clientID, secret)
			status, m := send(t, tt.method, s.URL+"/"+tt.tenant+"/oauth2/v2.0/token", tt.contentType, "", tokenForm(s, tt.mod))
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, tt.wantStatus, m)
			}
			if tt.wantError == "" {
				if tok, _ := m["access_token"].(string); tok == "" {
					t.Errorf("no access token in %v", m)
				}
				return
			}
			desc, _ := m["error_description"].(string)
			codes, _ := m["error_codes"].([]any)
			if m["error"] != tt.wantError || len(codes) != 1 || codes[0] != tt.wantAADSTS ||
				!strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, "\r\nTrace ID: ") ||
				m["trace_id"] == nil || m["correlation_id"] == nil || m["timestamp"] == nil {
				t.Errorf("error body %v, want %s with AADSTS%v", m, tt.wantError, tt.wantAADSTS)
			}
			if _, ok := m["access_token"]; ok {
				t.Error("an error answer holds a token")
			}
		})
	}
}

// TestGraph checks Graph's authentication, validation and error shapes.
func TestGraph(t *testing.T) {
	t.Parallel()
	users := "/v1.0/users/" + oid + "/transitiveMemberOf"
	tests := []struct {
		name       string
		method     string
		path       string // with query
		auth       func(tok string) string
		wantStatus int
		wantCode   string
	}{
		{"valid", http.MethodGet, users + "?$select=id&$top=999", bearer, 200, ""},
		{"upper-case oid", http.MethodGet, "/v1.0/users/" + strings.ToUpper(oid) + "/transitiveMemberOf?$select=id", bearer, 200, ""},
		{"no token", http.MethodGet, users + "?$select=id", func(string) string { return "" }, 401, "InvalidAuthenticationToken"},
		{"foreign token", http.MethodGet, users + "?$select=id", func(string) string { return "Bearer other" }, 401, "InvalidAuthenticationToken"},
		{"basic auth", http.MethodGet, users + "?$select=id", func(tok string) string { return "Basic " + tok }, 401, "InvalidAuthenticationToken"},
		{"other resource", http.MethodGet, "/v1.0/users/" + oid + "/memberOf?$select=id", bearer, 400, "BadRequest"},
		{"POST", http.MethodPost, users + "?$select=id", bearer, 405, "Request_BadRequest"},
		{"no $select", http.MethodGet, users + "?$top=999", bearer, 400, "BadRequest"},
		{"$select of more", http.MethodGet, users + "?$select=id,displayName", bearer, 400, "BadRequest"},
		{"$top too big", http.MethodGet, users + "?$select=id&$top=1000", bearer, 400, "Request_BadRequest"},
		{"bad skip token", http.MethodGet, users + "?$select=id&$skiptoken=abc", bearer, 400, "Directory_InvalidSkipToken"},
		{"unknown user", http.MethodGet, "/v1.0/users/00000000-1111-4222-8333-444444444444/transitiveMemberOf?$select=id", bearer, 404, "Request_ResourceNotFound"},
		{"other version", http.MethodGet, "/beta/users/" + oid + "/transitiveMemberOf?$select=id", bearer, 404, "BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(t, tenant, clientID, secret)
			s.SetGroups(oid, "11111111-1111-4111-8111-111111111111")
			tok := issue(t, s)
			status, m := send(t, tt.method, s.URL+tt.path, "", tt.auth(tok), "")
			if status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, tt.wantStatus, m)
			}
			if tt.wantCode == "" {
				if _, ok := m["value"].([]any); !ok || m["@odata.context"] == nil {
					t.Errorf("page %v has no value array or context", m)
				}
				return
			}
			e, _ := m["error"].(map[string]any)
			inner, _ := e["innerError"].(map[string]any)
			if e["code"] != tt.wantCode || e["message"] == "" || inner["request-id"] == nil || inner["date"] == nil {
				t.Errorf("error body %v, want code %s in Graph's shape", m, tt.wantCode)
			}
		})
	}
}

func bearer(tok string) string { return "Bearer " + tok }

// pageOf is a decoded Graph page.
type pageOf struct {
	Value []struct {
		Type string `json:"@odata.type"`
		ID   string `json:"id"`
	} `json:"value"`
	NextLink string `json:"@odata.nextLink"`
}

// TestPaging follows the fake's next links and checks what the pages hold.
func TestPaging(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		groups    int
		pageSize  int
		top       string
		wantPages int
	}{
		{"one page", 3, 0, "999", 1},
		{"default page size", 250, 0, "999", 3},      // 252 entries
		{"small pages", 5, 2, "999", 4},              // 7 entries
		{"$top below page size", 10, 100, "5", 3},    // 12 entries
		{"no groups", 0, 0, "999", 1},                // the role and the unit
		{"exact multiple", 98, 0, "999", 1},          // 100 entries
		{"one over a multiple", 99, 0, "999", 2},     // 101 entries
		{"no $top", 150, 0, "", 2},                   // 152 entries
		{"page of one", 1, 1, "999", 3},              // 3 entries
		{"many small pages", 30, 7, "999", 5},        // 32 entries
		{"top of one", 3, 100, "1", 5},               // 5 entries
		{"large", 1000, 999, "999", 2},               // 1002 entries
		{"page size above $top", 20, 50, "10", 3},    // 22 entries
		{"page size equal to entries", 8, 10, "", 1}, // 10 entries
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := New(t, tenant, clientID, secret)
			if tt.pageSize != 0 {
				s.PageSize(tt.pageSize)
			}
			var want []string
			for i := range tt.groups {
				want = append(want, fmt.Sprintf("%08x-1111-4222-8333-444444444444", i))
			}
			s.SetGroups(oid, want...)
			tok := issue(t, s)
			next := s.URL + "/v1.0/users/" + oid + "/transitiveMemberOf?$select=id"
			if tt.top != "" {
				next += "&$top=" + tt.top
			}
			var got []string
			var others []string
			pages := 0
			for next != "" {
				pages++
				if pages > 100 {
					t.Fatal("endless paging")
				}
				req, _ := http.NewRequest(http.MethodGet, next, nil)
				req.Header.Set("Authorization", "Bearer "+tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var p pageOf
				err = json.NewDecoder(resp.Body).Decode(&p)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("page %d: status %d, %v", pages, resp.StatusCode, err)
				}
				for _, v := range p.Value {
					if v.Type == "#microsoft.graph.group" {
						got = append(got, v.ID)
					} else {
						others = append(others, v.Type+" "+v.ID)
					}
				}
				if p.NextLink != "" && (!strings.HasPrefix(p.NextLink, s.URL+"/v1.0/users/"+oid+"/transitiveMemberOf?$select=id") ||
					!strings.Contains(p.NextLink, "$skiptoken="+skipPrefix)) {
					t.Fatalf("next link %q is not Graph's shape", p.NextLink)
				}
				next = p.NextLink
			}
			if pages != tt.wantPages {
				t.Errorf("pages = %d, want %d", pages, tt.wantPages)
			}
			if !slices.Equal(got, want) {
				t.Errorf("groups = %v, want %v", got, want)
			}
			wantOthers := []string{"#microsoft.graph.directoryRole " + DirectoryRoleID, "#microsoft.graph.administrativeUnit " + AdministrativeUnitID}
			if !slices.Equal(others, wantOthers) {
				t.Errorf("non-group entries = %v, want %v", others, wantOthers)
			}
			if tokCalls, graphCalls := s.Calls(); tokCalls != 1 || graphCalls != pages {
				t.Errorf("Calls() = %d, %d; want 1, %d", tokCalls, graphCalls, pages)
			}
		})
	}
}

// TestFailAndRevoke checks injected answers (in order, once each, counted)
// and token revocation.
func TestFailAndRevoke(t *testing.T) {
	t.Parallel()
	s := New(t, tenant, clientID, secret)
	s.SetGroups(oid)
	s.FailWith(StepToken, 503, http.Header{"Retry-After": {"7"}}, AADErrorBody("temporarily_unavailable", 50196, "Busy."))
	s.Fail(StepGraph, 403, GraphErrorBody("Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
	s.Fail(StepGraph, 200, `{"value":"not a list"}`)

	u := s.URL + "/" + tenant + "/oauth2/v2.0/token"
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(tokenForm(s, nil)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("injected token answer: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	tok := issue(t, s) // the failure was used up

	path := s.URL + "/v1.0/users/" + oid + "/transitiveMemberOf?$select=id"
	steps := []struct {
		before     func()
		wantStatus int
		check      func(map[string]any) bool
	}{
		{nil, 403, func(m map[string]any) bool {
			e, _ := m["error"].(map[string]any)
			return e["code"] == "Authorization_RequestDenied"
		}},
		{nil, 200, func(m map[string]any) bool { return m["value"] == "not a list" }},
		{nil, 200, func(m map[string]any) bool { v, ok := m["value"].([]any); return ok && len(v) == 2 }},
		{s.RevokeTokens, 401, func(m map[string]any) bool {
			e, _ := m["error"].(map[string]any)
			return e["code"] == "InvalidAuthenticationToken"
		}},
	}
	for i, st := range steps {
		if st.before != nil {
			st.before()
		}
		status, m := send(t, http.MethodGet, path, "", "Bearer "+tok, "")
		if status != st.wantStatus || !st.check(m) {
			t.Errorf("request %d: %d %v", i+1, status, m)
		}
	}
	if status, _ := send(t, http.MethodGet, path, "", "Bearer "+issue(t, s), ""); status != 200 {
		t.Errorf("a new token after revocation: status %d", status)
	}
	if tokCalls, graphCalls := s.Calls(); tokCalls != 3 || graphCalls != 5 {
		t.Errorf("Calls() = %d, %d; want 3, 5", tokCalls, graphCalls)
	}
}
