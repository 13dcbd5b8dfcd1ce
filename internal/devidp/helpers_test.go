package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"go.uber.org/zap/zaptest"
)

// testEpoch is when the tests happen, on their fake clocks.
var testEpoch = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

// testKeyPair is an RSA key and a self-signed certificate valid at testEpoch.
type testKeyPair struct {
	key  *rsa.PrivateKey
	cert *x509.Certificate
}

// Generating RSA keys is slow, so each test binary makes two, once.
var (
	idpKeys = sync.OnceValues(func() (testKeyPair, error) { return newTestKeyPair() })
	spKeys  = sync.OnceValues(func() (testKeyPair, error) { return newTestKeyPair() })
)

func newTestKeyPair() (testKeyPair, error) {
	key, cert, err := generateSigningKey(rand.Reader, testEpoch)
	return testKeyPair{key: key, cert: cert}, err
}

func mustKeys(t *testing.T, f func() (testKeyPair, error)) testKeyPair {
	t.Helper()
	kp, err := f()
	if err != nil {
		t.Fatalf("generate test key: %v", err)
	}
	return kp
}

// fakeClock is a clock that only moves when told to.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: testEpoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// listen returns a listener on a random local port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return ln
}

// serve starts an HTTP server on ln for the handler that newHandler
// returns when given the server's base URL.
func serve(t *testing.T, ln net.Listener, newHandler func(baseURL string) http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(newHandler("http://" + ln.Addr().String()))
	_ = ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// testIdP is a Server under test, served over HTTP.
type testIdP struct {
	*Server
	clock  *fakeClock
	http   *httptest.Server
	client *http.Client
}

// newTestIdP starts a Server with cfg, filling in the base URL, the test
// key, a fake clock and a test logger.
func newTestIdP(t *testing.T, cfg Config) *testIdP {
	t.Helper()
	kp := mustKeys(t, idpKeys)
	tp := &testIdP{clock: newFakeClock()}
	cfg.Key, cfg.Certificate = kp.key, kp.cert
	cfg.Now = tp.clock.Now
	cfg.Logger = zaptest.NewLogger(t)
	tp.http = serve(t, listen(t), func(baseURL string) http.Handler {
		cfg.BaseURL = baseURL
		s, err := New(cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		tp.Server = s
		return s
	})
	tp.client = tp.http.Client()
	tp.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return tp
}

// get fetches u and returns the status and the body.
func (tp *testIdP) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := tp.client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return readBody(t, resp)
}

// post posts form to u and returns the response and its body.
func (tp *testIdP) post(t *testing.T, u string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := tp.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	_, body := readBody(t, resp)
	return resp, body
}

func (tp *testIdP) url(path string) string { return tp.http.URL + path }

func readBody(t *testing.T, resp *http.Response) (int, string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp.StatusCode, string(b)
}

// testSP is a crewjam service provider that publishes its metadata over
// HTTP, and counts the fetches.
type testSP struct {
	mu      sync.Mutex // guards sp, which the metadata handler reads
	sp      *saml.ServiceProvider
	baseURL string
	fetches atomic.Int32
}

// newTestPair starts a Server with cfg and a service provider that it
// knows (its metadata URL is in cfg.ServiceProviders).
func newTestPair(t *testing.T, cfg Config) (*testIdP, *testSP) {
	t.Helper()
	ln := listen(t)
	cfg.ServiceProviders = append(cfg.ServiceProviders, "http://"+ln.Addr().String()+"/saml/metadata")
	idp := newTestIdP(t, cfg)
	return idp, startTestSP(t, idp, ln)
}

// newTestSP starts a service provider that idp does not know.
func newTestSP(t *testing.T, idp *testIdP) *testSP {
	t.Helper()
	return startTestSP(t, idp, listen(t))
}

// startTestSP starts, on ln, a service provider that trusts idp, on the
// clock of idp.
func startTestSP(t *testing.T, idp *testIdP, ln net.Listener) *testSP {
	t.Helper()
	kp := mustKeys(t, spKeys)
	idpMetadata, err := idp.Metadata()
	if err != nil {
		t.Fatalf("Metadata: %v", err)
	}
	ed, err := samlsp.ParseMetadata(idpMetadata)
	if err != nil {
		t.Fatalf("parse IdP metadata: %v", err)
	}
	tsp := &testSP{}
	serve(t, ln, func(baseURL string) http.Handler {
		tsp.baseURL = baseURL
		tsp.sp = &saml.ServiceProvider{
			EntityID:    baseURL + "/saml/metadata",
			Key:         kp.key,
			Certificate: kp.cert,
			MetadataURL: mustParseURL(t, baseURL+"/saml/metadata"),
			AcsURL:      mustParseURL(t, baseURL+"/saml/acs"),
			IDPMetadata: ed,
			Clock:       newDsigClock(idp.clock.Now),
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /saml/metadata", func(w http.ResponseWriter, _ *http.Request) {
			tsp.fetches.Add(1)
			tsp.mu.Lock()
			md := tsp.sp.Metadata()
			tsp.mu.Unlock()
			buf, err := xml.Marshal(md)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/samlmetadata+xml")
			_, _ = w.Write(buf)
		})
		return mux
	})
	return tsp
}

func (tsp *testSP) entityID() string { return tsp.sp.EntityID }

// update changes the service provider under its lock.
func (tsp *testSP) update(f func(sp *saml.ServiceProvider)) {
	tsp.mu.Lock()
	defer tsp.mu.Unlock()
	f(tsp.sp)
}

func mustParseURL(t *testing.T, s string) url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return *u
}

var (
	loginIDPattern      = regexp.MustCompile(`name="login" value="([^"]*)"`)
	formActionPattern   = regexp.MustCompile(`<form method="post" action="([^"]*)" id="SAMLResponseForm">`)
	samlResponsePattern = regexp.MustCompile(`name="SAMLResponse" value="([^"]*)"`)
	relayStatePattern   = regexp.MustCompile(`name="RelayState" value="([^"]*)"`)
)

// loginID returns the sign-in token in a sign-in page.
func loginID(t *testing.T, body string) string {
	t.Helper()
	m := loginIDPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no sign-in form in page:\n%s", body)
	}
	return m[1]
}

// postedResponse is what the auto-submitting form posts to the SP.
type postedResponse struct {
	action, relayState string
	xml                []byte
}

// parsePostForm extracts the auto-submitting form from a page.
func parsePostForm(t *testing.T, body string) postedResponse {
	t.Helper()
	action := formActionPattern.FindStringSubmatch(body)
	resp := samlResponsePattern.FindStringSubmatch(body)
	if action == nil || resp == nil {
		t.Fatalf("no SAMLResponse form in page:\n%s", body)
	}
	xmlBytes, err := base64.StdEncoding.DecodeString(html.UnescapeString(resp[1]))
	if err != nil {
		t.Fatalf("decode SAMLResponse: %v", err)
	}
	p := postedResponse{action: html.UnescapeString(action[1]), xml: xmlBytes}
	if m := relayStatePattern.FindStringSubmatch(body); m != nil {
		p.relayState = html.UnescapeString(m[1])
	}
	return p
}

// parseErr returns the detail of a crewjam SP error, which hides it in
// PrivateErr.
func parseErr(err error) error {
	if ire, ok := err.(*saml.InvalidResponseError); ok && ire.PrivateErr != nil {
		return ire.PrivateErr
	}
	return err
}
