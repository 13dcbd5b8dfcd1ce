package multi

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// client shows redirects instead of following them and keeps no cookies:
// every request carries exactly the cookies a test gives it.
var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Accept headers of a browser and of an API client.
const (
	acceptHTML = "text/html,application/xhtml+xml"
	acceptJSON = "application/json"
)

// cookieName is the session cookie's name (the default).
const cookieName = "engage_sso"

// reply is an answer of an instance.
type reply struct {
	status  int
	header  http.Header
	body    string
	cookies []*http.Cookie
	sent    time.Time // just before the request was sent
	done    time.Time // when the whole answer was read
}

func (r reply) location() string { return r.header.Get("Location") }

// session returns the session cookie the answer sets, or nil.
func (r reply) session() *http.Cookie {
	for _, c := range r.cookies {
		if c.Name == cookieName && c.Value != "" && c.MaxAge >= 0 {
			return c
		}
	}
	return nil
}

var (
	correlationRE = regexp.MustCompile(`id="correlation-id">([^<]+)<`)
	reasonRE      = regexp.MustCompile(`id="reason">([^<]+)<`)
	titleRE       = regexp.MustCompile(`id="title">([^<]+)<`)
)

// reason is the refusal reason on an error page, or in a JSON error.
func (r reply) reason() string {
	if m := reasonRE.FindStringSubmatch(r.body); m != nil {
		return m[1]
	}
	var j struct{ Error string }
	if json.Unmarshal([]byte(r.body), &j) == nil {
		return j.Error
	}
	return ""
}

// correlationID is the reference on an error page, or in a JSON error.
func (r reply) correlationID() string {
	if m := correlationRE.FindStringSubmatch(r.body); m != nil {
		return m[1]
	}
	var j struct {
		ID string `json:"correlation_id"`
	}
	if json.Unmarshal([]byte(r.body), &j) == nil {
		return j.ID
	}
	return ""
}

func (r reply) title() string {
	if m := titleRE.FindStringSubmatch(r.body); m != nil {
		return m[1]
	}
	return ""
}

// String describes the answer for failure messages: status, Location,
// and the error page's title, reason and reference, or the start of the
// body.
func (r reply) String() string {
	s := fmt.Sprintf("%d %s", r.status, http.StatusText(r.status))
	if loc := r.location(); loc != "" {
		s += " to " + loc
	}
	if title := r.title(); title != "" {
		return fmt.Sprintf("%s: page %q (reason %q, reference %q)", s, title, r.reason(), r.correlationID())
	}
	b := strings.TrimSpace(r.body)
	if len(b) > 300 {
		b = b[:300] + "..."
	}
	if b == "" {
		return s
	}
	return s + ": " + b
}

// fetch sends req and reads the whole answer.
func fetch(req *http.Request) (reply, error) {
	sent := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading the body: %w", req.Method, req.URL, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: string(body), cookies: resp.Cookies(), sent: sent, done: time.Now()}, nil
}

// all sends the requests at once and returns their answers in order. In a
// Redis outage every answer takes a while, so tests send them together.
func all(t *testing.T, reqs ...*http.Request) []reply {
	t.Helper()
	replies := make([]reply, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { replies[i], errs[i] = fetch(req) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return replies
}

// newGet returns a GET of url with the cookie (if any) and the Accept
// header.
func newGet(t *testing.T, url string, cookie *http.Cookie, accept string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	if cookie != nil {
		req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	}
	return req
}

// get requests url with the cookie and the Accept header.
func get(t *testing.T, url string, cookie *http.Cookie, accept string) reply {
	t.Helper()
	return all(t, newGet(t, url, cookie, accept))[0]
}

// newACSPost returns a browser's POST of a SAMLResponse (and RelayState,
// if not empty) to the instance's northwind ACS.
func (in *instance) newACSPost(t *testing.T, samlResponse, relay string) *http.Request {
	t.Helper()
	form := url.Values{"SAMLResponse": {samlResponse}}
	if relay != "" {
		form.Set("RelayState", relay)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, in.url+"/sso/saml/northwind/acs", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", acceptHTML)
	return req
}

// me asks the instance's upstream who the cookie's session is: GET /api/me
// as an API client. The identity is the zero value unless the answer is 200.
func (in *instance) me(t *testing.T, cookie *http.Cookie) (engageauth.Identity, reply) {
	t.Helper()
	r := get(t, in.url+"/api/me", cookie, acceptJSON)
	var id engageauth.Identity
	if r.status == http.StatusOK {
		if err := json.Unmarshal([]byte(r.body), &id); err != nil {
			t.Fatalf("GET %s/api/me: decoding %q: %v", in.url, r.body, err)
		}
	}
	return id, r
}

// nancy is the northwind user of the signed responses: a supervisor.
var nancy = samltest.User{
	ObjectID:  "5e6f7a8b-0000-4000-8000-00000000abcd",
	Email:     "nancy.davolio@northwind.example",
	GivenName: "Nancy",
	Surname:   "Davolio",
	Roles:     []string{"Engage.Supervisor"},
}

// northwindACS is the deployment's ACS URL for northwind, built from
// base_url: what the IdP addresses, whichever instance receives the POST.
func (c *cluster) northwindACS() string { return c.base + "/sso/saml/northwind/acs" }

// response returns a signed northwind response for nancy, encoded for the
// POST binding, answering requestID (IdP-initiated if empty).
func (c *cluster) response(t *testing.T, requestID string) string {
	t.Helper()
	return samltest.Encode(c.northwind.Response(t, samltest.ResponseOptions{
		Destination:  c.northwindACS(),
		Audience:     c.base + "/sso/saml/northwind",
		InResponseTo: requestID,
		User:         nancy,
	}))
}

// postACS posts a SAMLResponse (and RelayState, if not empty) to the
// instance's northwind ACS, as a browser would.
func (in *instance) postACS(t *testing.T, samlResponse, relay string) reply {
	t.Helper()
	return all(t, in.newACSPost(t, samlResponse, relay))[0]
}

// signIn signs nancy in at the instance with an IdP-initiated response and
// returns the session cookie.
func (c *cluster) signIn(t *testing.T, in *instance) *http.Cookie {
	t.Helper()
	r := in.postACS(t, c.response(t, ""), "")
	if r.status != http.StatusSeeOther || r.session() == nil {
		t.Fatalf("signing in at %s: %d, session cookie %v; want 303 and a session\n%s", in.name, r.status, r.session() != nil, r)
	}
	return r.session()
}

// authnRequest is the part of an AuthnRequest the tests check.
type authnRequest struct {
	ID          string `xml:"ID,attr"`
	Destination string `xml:"Destination,attr"`
	ACSURL      string `xml:"AssertionConsumerServiceURL,attr"`
}

// startLogin starts an SP-initiated northwind sign-in at the instance, with
// return path rd, and returns the RelayState and the AuthnRequest read from
// the redirect to the IdP (HTTP-Redirect binding: deflate, then base64).
func (in *instance) startLogin(t *testing.T, rd string) (relay string, req authnRequest) {
	t.Helper()
	r := get(t, in.url+"/sso/login/northwind?rd="+url.QueryEscape(rd), nil, acceptHTML)
	if r.status != http.StatusFound {
		t.Fatalf("GET %s/sso/login/northwind: %d; want 302 to the IdP\n%s", in.name, r.status, r)
	}
	u, err := url.Parse(r.location())
	if err != nil {
		t.Fatalf("redirect to the IdP %q: %v", r.location(), err)
	}
	relay = u.Query().Get("RelayState")
	raw, err := base64.StdEncoding.DecodeString(u.Query().Get("SAMLRequest"))
	if err != nil {
		t.Fatalf("SAMLRequest of %q is not base64: %v", r.location(), err)
	}
	x, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatalf("SAMLRequest is not deflated: %v", err)
	}
	if err := xml.Unmarshal(x, &req); err != nil {
		t.Fatalf("SAMLRequest is not XML: %v\n%s", err, x)
	}
	if relay == "" || req.ID == "" {
		t.Fatalf("redirect to the IdP has RelayState %q and request ID %q; want both\n%s", relay, req.ID, x)
	}
	return relay, req
}
