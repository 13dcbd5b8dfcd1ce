// Package graphtest is a local fake of the Microsoft identity platform
// token endpoint and of Microsoft Graph's transitiveMemberOf, for tests of
// package graph and of the Caddy module.
//
// One httptest.Server serves both
//
//	POST /{tenant}/oauth2/v2.0/token                     (client-credentials grant)
//	GET  /v1.0/users/{oid}/transitiveMemberOf?$select=id (paged with @odata.nextLink)
//
// with the response and error shapes of the real services. Point a client at
// it with LoginURL and GraphURL both set to Server.URL; the token scope it
// expects is {Server.URL}/.default.
//
// The fake checks what a real tenant would: the tenant in the path, the
// grant type, client id, client secret and scope of a token request, and
// the bearer token of a Graph request (only tokens it issued and has not
// revoked). It also insists on $select=id so that callers keep the pages
// small, and answers 404 Request_ResourceNotFound for unknown users. A
// Server is safe for concurrent use.
package graphtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Steps a failure can be injected into with Fail and FailWith.
const (
	StepToken = "token" // the token endpoint
	StepGraph = "graph" // Graph's transitiveMemberOf
)

// Object ids of the non-group memberships the fake adds for every user, so
// that callers must filter by @odata.type.
const (
	DirectoryRoleID      = "5f2a8d3e-0c4b-4e6a-9d1f-7b3c2a1e0f99"
	AdministrativeUnitID = "9b1c7e2d-3f4a-4b5c-8d6e-0a1b2c3d4e5f"
)

// DefaultPageSize is the number of entries per page, like Graph's default.
const DefaultPageSize = 100

// tokenLifetime is the expires_in of issued tokens, in seconds, like AAD.
const tokenLifetime = 3599

// skipPrefix starts the fake's $skiptoken values, like Graph's.
const skipPrefix = "RFNwdAIAAQAAAD"

// Server is the fake. URL is the base URL of both the token endpoint and
// Graph.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port, without a trailing
	// slash.
	URL string

	t        testing.TB
	srv      *httptest.Server
	tenant   string
	clientID string
	secret   string

	mu         sync.Mutex
	users      map[string][]string // lower-case oid → group ids
	pageSize   int
	fails      map[string][]reply // per step, served first in order
	tokens     map[string]bool    // issued access tokens still valid
	tokenCalls int
	graphCalls int
}

// reply is an injected answer.
type reply struct {
	status int
	header http.Header
	body   string
}

// New starts a fake for the given tenant and application credentials. It
// is closed when the test ends.
func New(t testing.TB, tenant, clientID, clientSecret string) *Server {
	t.Helper()
	s := Start(tenant, clientID, clientSecret)
	s.t = t
	t.Cleanup(s.Close)
	return s
}

// Start starts a fake that outlives any one test, for a deployment a test
// package shares; the caller closes it. Its PageSize and Fail panic on
// misuse instead of failing a test.
func Start(tenant, clientID, clientSecret string) *Server {
	s := &Server{
		tenant:   tenant,
		clientID: clientID,
		secret:   clientSecret,
		users:    make(map[string][]string),
		pageSize: DefaultPageSize,
		fails:    make(map[string][]reply),
		tokens:   make(map[string]bool),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// fatalf fails the test of a fake made by New, or panics for one made by
// Start.
func (s *Server) fatalf(format string, args ...any) {
	if s.t == nil {
		panic(fmt.Sprintf(format, args...))
	}
	s.t.Helper()
	s.t.Fatalf(format, args...)
}

// SetGroups makes oid a known user whose transitive memberships are the
// given group ids (any order, duplicates kept as given), replacing earlier
// ones. Graph's answer also holds a directory role and an administrative
// unit for every user.
func (s *Server) SetGroups(oid string, groupIDs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[strings.ToLower(oid)] = append([]string(nil), groupIDs...)
}

// PageSize sets how many entries (groups, the role and the unit) a page
// holds at most; the default is DefaultPageSize. A $top below it wins.
func (s *Server) PageSize(n int) {
	if n < 1 {
		s.fatalf("graphtest: page size %d is not positive", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Fail queues an answer for the next request of step (StepToken or
// StepGraph): that request gets status and body instead of the normal
// answer, whatever it asks. Each call queues one answer; queued answers are
// served in order. Any status works, so a 200 with a crafted body (a
// malformed page, a foreign @odata.nextLink) can be injected too. Use
// AADErrorBody and GraphErrorBody for real error bodies.
func (s *Server) Fail(step string, status int, body string) {
	s.FailWith(step, status, nil, body)
}

// FailWith is Fail with extra response headers, such as Retry-After.
func (s *Server) FailWith(step string, status int, header http.Header, body string) {
	if step != StepToken && step != StepGraph {
		s.fatalf("graphtest: unknown step %q", step)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails[step] = append(s.fails[step], reply{status: status, header: header.Clone(), body: body})
}

// RevokeTokens makes Graph refuse every access token issued so far with
// 401 InvalidAuthenticationToken.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Calls returns how many requests the token endpoint and Graph received,
// injected failures included.
func (s *Server) Calls() (token, graph int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenCalls, s.graphCalls
}

// serve routes a request to the token endpoint or to Graph.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token"):
		s.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/v1.0/"):
		s.serveGraph(w, r)
	default:
		writeJSON(w, http.StatusNotFound, nil, GraphErrorBody("BadRequest", "Invalid version."))
	}
}

// injected counts a request of step and pops the next injected answer.
func (s *Server) injected(step string) (reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if step == StepToken {
		s.tokenCalls++
	} else {
		s.graphCalls++
	}
	q := s.fails[step]
	if len(q) == 0 {
		return reply{}, false
	}
	s.fails[step] = q[1:]
	return q[0], true
}

// serveToken is the v2.0 token endpoint, client-credentials grant only.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.injected(StepToken); ok {
		writeJSON(w, f.status, f.header, f.body)
		return
	}
	aad := func(status int, code string, aadsts int, desc string) {
		writeJSON(w, status, nil, AADErrorBody(code, aadsts, desc))
	}
	tenant := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/oauth2/v2.0/token")
	if !strings.EqualFold(tenant, s.tenant) {
		aad(http.StatusBadRequest, "invalid_request", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	if r.Method != http.MethodPost {
		aad(http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a GET request.")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		aad(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if err := r.ParseForm(); err != nil {
		aad(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") == "":
		aad(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	case f.Get("grant_type") != "client_credentials":
		aad(http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+f.Get("grant_type")+"'.")
	case f.Get("client_id") != s.clientID:
		aad(http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", f.Get("client_id"), s.tenant))
	case f.Get("client_secret") == "":
		aad(http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
	case f.Get("client_secret") != s.secret:
		aad(http.StatusUnauthorized, "invalid_client", 7000215,
			fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", s.clientID))
	case f.Get("scope") != s.URL+"/.default":
		aad(http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", f.Get("scope")))
	default:
		tok := randomToken()
		s.mu.Lock()
		s.tokens[tok] = true
		s.mu.Unlock()
		body, _ := json.Marshal(map[string]any{
			"token_type":     "Bearer",
			"expires_in":     tokenLifetime,
			"ext_expires_in": tokenLifetime,
			"access_token":   tok,
		})
		writeJSON(w, http.StatusOK, nil, string(body))
	}
}

// serveGraph is GET /v1.0/users/{oid}/transitiveMemberOf.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.injected(StepGraph); ok {
		writeJSON(w, f.status, f.header, f.body)
		return
	}
	graphErr := func(status int, code, msg string) {
		writeJSON(w, status, nil, GraphErrorBody(code, msg))
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		graphErr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return
	}
	s.mu.Lock()
	valid := s.tokens[tok]
	s.mu.Unlock()
	if !valid {
		graphErr(http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1.0/"), "/")
	if len(parts) != 3 || parts[0] != "users" || parts[2] != "transitiveMemberOf" {
		graphErr(http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", r.URL.Path))
		return
	}
	if r.Method != http.MethodGet {
		graphErr(http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	q := r.URL.Query()
	if q.Get("$select") != "id" {
		graphErr(http.StatusBadRequest, "BadRequest", "graphtest: the fake requires $select=id.")
		return
	}
	s.mu.Lock()
	size := s.pageSize
	groups, known := s.users[strings.ToLower(parts[1])]
	s.mu.Unlock()
	if v := q.Get("$top"); v != "" {
		top, err := strconv.Atoi(v)
		if err != nil || top < 1 || top > 999 {
			graphErr(http.StatusBadRequest, "Request_BadRequest", fmt.Sprintf("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive.", v))
			return
		}
		size = min(size, top)
	}
	offset := 0
	if v := q.Get("$skiptoken"); v != "" {
		n, ok := decodeSkip(v)
		if !ok {
			graphErr(http.StatusBadRequest, "Directory_InvalidSkipToken", "The specified page token value has expired and can no longer be included in your request.")
			return
		}
		offset = n
	}
	if !known {
		graphErr(http.StatusNotFound, "Request_ResourceNotFound",
			fmt.Sprintf("Resource '%s' does not exist or one of its queried reference-property objects are not present.", parts[1]))
		return
	}

	type entry struct {
		Type string `json:"@odata.type"`
		ID   string `json:"id"`
	}
	all := make([]entry, 0, len(groups)+2)
	all = append(all, entry{"#microsoft.graph.directoryRole", DirectoryRoleID})
	for i, g := range groups {
		all = append(all, entry{"#microsoft.graph.group", g})
		if i == len(groups)/2 {
			all = append(all, entry{"#microsoft.graph.administrativeUnit", AdministrativeUnitID})
		}
	}
	if len(groups) == 0 {
		all = append(all, entry{"#microsoft.graph.administrativeUnit", AdministrativeUnitID})
	}
	offset = min(offset, len(all))
	end := min(offset+size, len(all))
	page := map[string]any{
		"@odata.context": s.URL + "/v1.0/$metadata#directoryObjects(id)",
		"value":          all[offset:end],
	}
	if end < len(all) {
		page["@odata.nextLink"] = s.URL + "/v1.0/users/" + parts[1] + "/transitiveMemberOf?$select=id&$top=" +
			strconv.Itoa(size) + "&$skiptoken=" + url.QueryEscape(encodeSkip(end))
	}
	body, _ := json.Marshal(page)
	writeJSON(w, http.StatusOK, nil, string(body))
}

// encodeSkip makes an opaque $skiptoken for offset n.
func encodeSkip(n int) string {
	return skipPrefix + base64.RawURLEncoding.EncodeToString([]byte("offset:"+strconv.Itoa(n)))
}

// decodeSkip reads a $skiptoken made by encodeSkip.
func decodeSkip(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, skipPrefix)
	if !ok {
		return 0, false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// writeJSON writes a JSON answer with Graph's and AAD's usual headers.
func writeJSON(w http.ResponseWriter, status int, header http.Header, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("request-id", newGUID())
	h.Set("client-request-id", newGUID())
	for k, v := range header {
		h[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// AADErrorBody returns a token endpoint error body in AAD's shape, such as
// AADErrorBody("invalid_client", 7000215, "Invalid client secret provided.")
// for {"error":"invalid_client","error_description":"AADSTS7000215: Invalid
// client secret provided.\r\nTrace ID: …","error_codes":[7000215],…}.
func AADErrorBody(code string, aadsts int, description string) string {
	trace, corr := newGUID(), newGUID()
	ts := time.Now().UTC().Format("2006-01-02 15:04:05Z")
	body, _ := json.Marshal(map[string]any{
		"error": code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			aadsts, description, trace, corr, ts),
		"error_codes":    []int{aadsts},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	})
	return string(body)
}

// GraphErrorBody returns a Graph error body, such as
// GraphErrorBody("Authorization_RequestDenied", "Insufficient privileges to
// complete the operation.") for {"error":{"code":…,"message":…,
// "innerError":{"date":…,"request-id":…,"client-request-id":…}}}.
func GraphErrorBody(code, message string) string {
	rid := newGUID()
	body, _ := json.Marshal(map[string]any{
		"error": map[string]any{
			"code":    code,
			"message": message,
			"innerError": map[string]string{
				"date":              time.Now().UTC().Format("2006-01-02T15:04:05"),
				"request-id":        rid,
				"client-request-id": rid,
			},
		},
	})
	return string(body)
}

// newGUID returns a random GUID in lower case.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// randomToken returns an opaque access token.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "eyJ0eXAiOiJKV1QifQ." + base64.RawURLEncoding.EncodeToString(b[:])
}
