package caddymodule

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// The DefaultUser's groups, mapped to roles by testCompanies.
var (
	groupAgent      = samltest.DefaultUser().Groups[0]
	groupSupervisor = samltest.DefaultUser().Groups[1]
)

const testTenant = "8b966979-910b-487c-a604-69229b1ac75c"

// fabrikamTenant is Fabrikam's Azure tenant: a tenant (an IdP) belongs to
// one company.
const fabrikamTenant = "5d1c9a70-3f2b-4e8d-9c6a-7b0e1f2a3b4c"

// idpKey is one RSA key for every test IdP: generating a key per test
// would dominate the package's test time under -race.
var idpKey = sync.OnceValues(func() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, 2048)
})

// testIdP returns an Azure-like IdP (as samltest.NewIdP makes) with the
// shared key.
func testIdP(t testing.TB) *samltest.IdP {
	t.Helper()
	return testIdPFor(t, testTenant)
}

// testIdPFor returns the test IdP of tenant.
func testIdPFor(t testing.TB, tenant string) *samltest.IdP {
	t.Helper()
	key, err := idpKey()
	if err != nil {
		t.Fatalf("generating the IdP key: %v", err)
	}
	now := time.Now()
	return &samltest.IdP{
		TenantID: tenant,
		EntityID: "https://sts.windows.net/" + tenant + "/",
		SSOURL:   "https://login.microsoftonline.com/" + tenant + "/saml2",
		Key:      key,
		Cert:     samltest.SelfSignedCert(t, key, now.AddDate(-1, 0, 0), now.AddDate(3, 0, 0)),
	}
}

// testCompanies is the default deployment of the tests: Contoso with one
// provider (the DefaultUser is a supervisor there) and Fabrikam with two.
func testCompanies(metadataFile string) []*Company {
	return []*Company{
		{
			ID: "contoso", Name: "Contoso Ltd",
			Domains: []string{"contoso.example", "*.branch.contoso.example"},
			Providers: []*Provider{{
				Label: "contoso", MetadataFile: metadataFile,
				Roles: map[string][]string{"agent": {groupAgent}, "supervisor": {groupSupervisor}},
			}},
		},
		{
			ID: "fabrikam", Name: "Fabrikam Inc",
			Domains: []string{"fabrikam.example"},
			Providers: []*Provider{
				{Label: "fabrikam-a", MetadataFile: metadataFile, Roles: map[string][]string{"agent": {groupAgent}}},
				{Label: "fabrikam-b", MetadataFile: metadataFile, Roles: map[string][]string{"agent": {groupAgent}}},
			},
		},
	}
}

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// errStoreDown is what a failing testStore returns. Its text must never
// reach a client.
var errStoreDown = errors.New("dial tcp 10.9.8.7:6379: connect: connection refused")

// testStore wraps a store, counts the calls the handler makes and can be
// made to fail.
type testStore struct {
	session.Store
	failAll  atomic.Bool // every method fails
	failSave atomic.Bool // SaveSession fails

	saves, loads, deletes, savePendings, takes, marks, cachePuts, cacheGets atomic.Int32
}

func (s *testStore) err() error {
	if s.failAll.Load() {
		return errStoreDown
	}
	return nil
}

func (s *testStore) SaveSession(ctx context.Context, sess *session.Session, ttl time.Duration) error {
	s.saves.Add(1)
	if s.failSave.Load() {
		return errStoreDown
	}
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.SaveSession(ctx, sess, ttl)
}

// RenewSession counts as a save (a renewal is the handler's only save of
// an existing session) and fails with failSave like SaveSession.
func (s *testStore) RenewSession(ctx context.Context, sess *session.Session, ttl time.Duration) (bool, error) {
	s.saves.Add(1)
	if s.failSave.Load() {
		return false, errStoreDown
	}
	if err := s.err(); err != nil {
		return false, err
	}
	return s.Store.RenewSession(ctx, sess, ttl)
}

func (s *testStore) LoadSession(ctx context.Context, id string) (*session.Session, error) {
	s.loads.Add(1)
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.LoadSession(ctx, id)
}

func (s *testStore) DeleteSession(ctx context.Context, id string) error {
	s.deletes.Add(1)
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.DeleteSession(ctx, id)
}

func (s *testStore) SavePending(ctx context.Context, key string, p *session.PendingLogin, ttl time.Duration) error {
	s.savePendings.Add(1)
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.SavePending(ctx, key, p, ttl)
}

func (s *testStore) TakePending(ctx context.Context, key string) (*session.PendingLogin, error) {
	s.takes.Add(1)
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.TakePending(ctx, key)
}

func (s *testStore) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	s.marks.Add(1)
	if err := s.err(); err != nil {
		return false, err
	}
	return s.Store.MarkAssertionUsed(ctx, id, until)
}

func (s *testStore) PutCached(ctx context.Context, key string, data []byte, ttl time.Duration) error {
	s.cachePuts.Add(1)
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.PutCached(ctx, key, data, ttl)
}

func (s *testStore) GetCached(ctx context.Context, key string) ([]byte, error) {
	s.cacheGets.Add(1)
	if err := s.err(); err != nil {
		return nil, err
	}
	return s.Store.GetCached(ctx, key)
}

func (s *testStore) Ping(ctx context.Context) error {
	if err := s.err(); err != nil {
		return err
	}
	return s.Store.Ping(ctx)
}

// calls returns the number of store calls made so far.
func (s *testStore) calls() int32 {
	return s.saves.Load() + s.loads.Load() + s.deletes.Load() + s.savePendings.Load() + s.takes.Load() + s.marks.Load() +
		s.cachePuts.Load() + s.cacheGets.Load()
}

// envConfig changes the default test deployment.
type envConfig struct {
	baseURL      string // default "http://localhost:8080"
	header       string // Handler.Header
	plainHeaders bool
	companies    func(metadataFile string) []*Company // default testCompanies
}

// testEnv is a provisioned App and Handler with a fake clock, a counting
// store and an observed logger.
type testEnv struct {
	app   *App
	h     *Handler
	idp   *samltest.IdP // Contoso's tenant, and any other company's but Fabrikam's
	fab   *samltest.IdP // Fabrikam's tenant
	clock *fakeClock
	store *testStore
	mem   *session.Memory // the store under testStore, for setup without counting
	logs  *observer.ObservedLogs
}

func newEnv(t testing.TB, cfg envConfig) *testEnv {
	t.Helper()
	if cfg.baseURL == "" {
		cfg.baseURL = "http://localhost:8080"
	}
	if cfg.companies == nil {
		cfg.companies = testCompanies
	}
	idp := testIdP(t)
	metadata := idp.Metadata(t)
	mdFile := filepath.Join(t.TempDir(), "idp-metadata.xml")
	if err := os.WriteFile(mdFile, metadata, 0o600); err != nil {
		t.Fatal(err)
	}

	// Fabrikam signs in with its own tenant: the companies' metadata files
	// name mdFile, which newEnv swaps for Fabrikam's file.
	fab := testIdPFor(t, fabrikamTenant)
	fabMetadata := fab.Metadata(t)
	fabFile := filepath.Join(filepath.Dir(mdFile), "fabrikam-metadata.xml")
	if err := os.WriteFile(fabFile, fabMetadata, 0o600); err != nil {
		t.Fatal(err)
	}
	companies := cfg.companies(mdFile)
	for _, c := range companies {
		for _, p := range c.Providers {
			if c.ID == "fabrikam" && p.MetadataFile == mdFile {
				p.MetadataFile = fabFile
			}
		}
	}
	app := &App{BaseURL: cfg.baseURL, Companies: companies}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := app.Provision(ctx); err != nil {
		t.Fatalf("App.Provision() = %v", err)
	}
	t.Cleanup(func() {
		if err := app.Cleanup(); err != nil {
			t.Errorf("App.Cleanup() = %v", err)
		}
	})

	// Swap in the test's clock, store and logger. The SPs captured the
	// store (replay cache) and clock when they were built, so rebuild them.
	clock := &fakeClock{t: time.Now().Truncate(time.Second)}
	mem := session.NewMemory(session.MemoryOptions{Now: clock.Now})
	t.Cleanup(func() { _ = mem.Close() })
	store := &testStore{Store: mem}
	core, logs := observer.New(zap.DebugLevel)
	logger := zap.New(core)
	app.logger = logger
	app.store = store
	app.now = clock.Now
	app.minter.Now = clock.Now
	idp.Now = clock.Now
	fab.Now = clock.Now
	for label, p := range app.providers {
		md, err := os.ReadFile(p.cfg.MetadataFile)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.setMetadata(md); err != nil {
			t.Fatalf("provider %s: setMetadata() = %v", label, err)
		}
	}

	// What Handler.Provision does, without a Caddy config to find the app in.
	h := &Handler{Header: cfg.header, PlainHeaders: cfg.plainHeaders}
	if err := h.Validate(); err != nil {
		t.Fatalf("Handler.Validate() = %v", err)
	}
	h.app, h.logger = app, logger
	h.header = textproto.CanonicalMIMEHeaderKey(h.Header)
	if h.header == "" {
		h.header = "X-Engage-Identity"
	}
	return &testEnv{app: app, h: h, idp: idp, fab: fab, clock: clock, store: store, mem: mem, logs: logs}
}

// newSession stores a session for the DefaultUser at Contoso, changed by
// mod, and returns the cookie value that names it. It bypasses the
// counting store and keeps the session in the store for a day, so that only
// the handler decides when it is over.
func (e *testEnv) newSession(t testing.TB, mod func(*session.Session)) (string, *session.Session) {
	t.Helper()
	tok, id, err := session.NewToken(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	s := &session.Session{
		ID: id, UserID: "user-1", Email: "alice@contoso.example",
		GivenName: "Alice", FamilyName: "Example",
		Role: "supervisor", Company: "contoso", Provider: "contoso",
		ObjectID: "5e1c9a7f-2b4d-4a8e-9c3f-7d1b6e2a4c90", TenantID: testTenant,
		CreatedAt: now, LastSeen: now, ExpiresAt: now.Add(time.Duration(e.app.Session.Lifetime)),
	}
	if mod != nil {
		mod(s)
	}
	if err := e.mem.SaveSession(context.Background(), s, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	return tok, s
}

// sessionCookie is the session cookie carrying tok.
func (e *testEnv) sessionCookie(tok string) *http.Cookie {
	return &http.Cookie{Name: e.app.Session.CookieName, Value: tok}
}

// result is what a request through the handler produced.
type result struct {
	rec  *httptest.ResponseRecorder
	next *http.Request // the request next received; nil if it was not called
	repl *caddy.Replacer
}

func (r result) body() string { return r.rec.Body.String() }

func (r result) cookie(name string) *http.Cookie {
	for _, c := range r.rec.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// withCaddyContext gives r the context Caddy's server gives a request:
// request vars, extra log fields and an HTTP replacer.
func withCaddyContext(r *http.Request) (*http.Request, *caddy.Replacer) {
	ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{})
	ctx = context.WithValue(ctx, caddyhttp.ExtraLogFieldsCtxKey, new(caddyhttp.ExtraLogFields))
	r = r.WithContext(ctx)
	repl := caddyhttp.NewTestReplacer(r)
	return r, repl
}

// serve runs r through the handler with a next handler that records the
// request it receives and answers 200 "upstream".
func (e *testEnv) serve(t testing.TB, r *http.Request) result {
	t.Helper()
	r, repl := withCaddyContext(r)
	res := result{rec: httptest.NewRecorder(), repl: repl}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		res.next = r
		_, err := io.WriteString(w, "upstream")
		return err
	})
	if err := e.h.ServeHTTP(res.rec, r, next); err != nil {
		t.Fatalf("ServeHTTP(%s %s) = %v", r.Method, r.URL, err)
	}
	return res
}

// get serves a GET of target from a browser, with cookies.
func (e *testEnv) get(t testing.TB, target string, cookies ...*http.Cookie) result {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return e.serve(t, r)
}

// postForm serves a form POST of target, with cookies.
func (e *testEnv) postForm(t testing.TB, target string, form url.Values, cookies ...*http.Cookie) result {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Accept", "text/html")
	for _, c := range cookies {
		r.AddCookie(c)
	}
	return e.serve(t, r)
}

// loginStart is the outcome of GET /sso/login/{label}.
type loginStart struct {
	result
	relay     string // RelayState sent to the IdP
	requestID string // ID of the AuthnRequest
}

// startLogin starts an SP-initiated login and decodes the AuthnRequest the
// browser is sent to the IdP with.
func (e *testEnv) startLogin(t testing.TB, label, rd string, cookies ...*http.Cookie) loginStart {
	t.Helper()
	target := "/sso/login/" + label
	if rd != "" {
		target += "?rd=" + url.QueryEscape(rd)
	}
	res := e.get(t, target, cookies...)
	if res.rec.Code != http.StatusFound {
		t.Fatalf("GET %s = %d; want 302\n%s", target, res.rec.Code, res.body())
	}
	loc, err := url.Parse(res.rec.Header().Get("Location"))
	if err != nil {
		t.Fatalf("Location: %v", err)
	}
	if got, want := loc.Scheme+"://"+loc.Host+loc.Path, e.idpFor(label).SSOURL; got != want {
		t.Fatalf("GET %s redirected to %s; want the IdP's SSO URL %s", target, got, want)
	}
	return loginStart{result: res, relay: loc.Query().Get("RelayState"), requestID: authnRequestID(t, loc.Query().Get("SAMLRequest"))}
}

// authnRequestID decodes an HTTP-Redirect SAMLRequest (deflate, then
// base64) and returns the AuthnRequest's ID.
func authnRequestID(t testing.TB, samlRequest string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlRequest)
	if err != nil {
		t.Fatalf("SAMLRequest is not base64: %v", err)
	}
	x, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("SAMLRequest is not deflated: %v", err)
	}
	var req struct {
		XMLName xml.Name
		ID      string `xml:"ID,attr"`
	}
	if err := xml.Unmarshal(x, &req); err != nil {
		t.Fatalf("SAMLRequest is not XML: %v", err)
	}
	if req.XMLName.Local != "AuthnRequest" || req.ID == "" {
		t.Fatalf("SAMLRequest is a <%s> with ID %q; want an AuthnRequest with an ID", req.XMLName.Local, req.ID)
	}
	return req.ID
}

// samlResponse is a signed response from the IdP to label's ACS for user
// (zero: the DefaultUser), answering inResponseTo ("" for IdP-initiated).
func (e *testEnv) samlResponse(t testing.TB, label, inResponseTo string, user samltest.User) string {
	t.Helper()
	return samltest.Encode(e.idpFor(label).Response(t, samltest.ResponseOptions{
		Destination:  e.app.BaseURL + "/sso/saml/" + label + "/acs",
		Audience:     e.app.BaseURL + "/sso/saml/" + label,
		InResponseTo: inResponseTo,
		User:         user,
	}))
}

// idpFor returns the IdP of the provider label.
func (e *testEnv) idpFor(label string) *samltest.IdP {
	if p := e.app.providers[label]; p != nil && p.company.ID == "fabrikam" {
		return e.fab
	}
	return e.idp
}

// postACS posts a SAMLResponse and RelayState to label's ACS.
func (e *testEnv) postACS(t testing.TB, label, samlResponse, relay string, cookies ...*http.Cookie) result {
	t.Helper()
	form := url.Values{"SAMLResponse": {samlResponse}}
	if relay != "" {
		form.Set("RelayState", relay)
	}
	return e.postForm(t, "/sso/saml/"+label+"/acs", form, cookies...)
}

// logsWith returns the log entries that have a field of that value.
func (e *testEnv) logsWith(key, value string) []observer.LoggedEntry {
	return e.logs.Filter(func(le observer.LoggedEntry) bool {
		for _, f := range le.Context {
			if f.Key == key && f.String == value {
				return true
			}
		}
		return false
	}).All()
}
