package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

const spSLO = spEntityID + "/slo"

// sloConfig is testConfig with single logout on.
func sloConfig(t *testing.T, idp *samltest.IdP, now time.Time) Config {
	t.Helper()
	cfg := testConfig(t, idp, now)
	cfg.SLOURL = spSLO
	return cfg
}

// inflateQuery decodes the message parameter of the redirect URL u.
func inflateQuery(t *testing.T, u, param string) ([]byte, url.Values) {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", u, err)
	}
	q := parsed.Query()
	deflated, err := base64.StdEncoding.DecodeString(q.Get(param))
	if err != nil {
		t.Fatalf("%s is not base64: %v", param, err)
	}
	raw, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
	if err != nil {
		t.Fatalf("%s is not deflated: %v", param, err)
	}
	return raw, q
}

func TestSingleLogoutAvailability(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	noSLOMetadata, err := ParseMetadata(idp.MetadataWith(t, samltest.MetadataOptions{NoSLO: true}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   bool
	}{
		{"SP and IdP", func(*Config) {}, true},
		{"no SP SLO URL", func(c *Config) { c.SLOURL = "" }, false},
		{"IdP without SingleLogoutService", func(c *Config) { c.IdP = noSLOMetadata }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := sloConfig(t, idp, now)
			tt.change(&cfg)
			sp := newTestSP(t, cfg)
			if got := sp.SingleLogout(); got != tt.want {
				t.Fatalf("SingleLogout() = %v; want %v", got, tt.want)
			}
			if tt.want {
				return
			}
			if _, _, err := sp.LogoutRequestURL(LogoutSubject{NameID: "a@b.example"}, ""); !errors.Is(err, ErrNoSingleLogout) {
				t.Errorf("LogoutRequestURL() error = %v; want ErrNoSingleLogout", err)
			}
			if _, err := sp.LogoutResponseURL("id-1", "", StatusSuccess); !errors.Is(err, ErrNoSingleLogout) {
				t.Errorf("LogoutResponseURL() error = %v; want ErrNoSingleLogout", err)
			}
			if _, err := sp.ParseRedirectLogoutRequest(context.Background(), "SAMLRequest=x"); !errors.Is(err, ErrNoSingleLogout) {
				t.Errorf("ParseRedirectLogoutRequest() error = %v; want ErrNoSingleLogout", err)
			}
		})
	}

	for _, bad := range []string{"http://engage.example.com/slo", "/slo", spSLO + "#x"} {
		cfg := sloConfig(t, idp, now)
		cfg.SLOURL = bad
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "SLO URL") {
			t.Errorf("New(SLOURL %q) error = %v; want an SLO URL error", bad, err)
		}
	}
	md := *idpMetadata(t, idp)
	md.SLORedirectURL = "javascript:alert(1)"
	cfg := sloConfig(t, idp, now)
	cfg.IdP = &md
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "SingleLogoutService") {
		t.Errorf("New(IdP SLO %q) error = %v; want a SingleLogoutService error", md.SLORedirectURL, err)
	}
}

func TestMetadataSingleLogoutService(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	for _, sloURL := range []string{spSLO, ""} {
		cfg := sloConfig(t, idp, now)
		cfg.SLOURL = sloURL
		data, err := newTestSP(t, cfg).Metadata()
		if err != nil {
			t.Fatal(err)
		}
		var ed crewjam.EntityDescriptor
		if err := xml.Unmarshal(data, &ed); err != nil {
			t.Fatal(err)
		}
		slo := ed.SPSSODescriptors[0].SingleLogoutServices
		switch {
		case sloURL == "" && len(slo) != 0:
			t.Errorf("metadata without SLOURL has SingleLogoutServices %+v; want none", slo)
		case sloURL != "" && (len(slo) != 1 || slo[0].Binding != crewjam.HTTPRedirectBinding || slo[0].Location != sloURL):
			t.Errorf("metadata SingleLogoutServices = %+v; want one HTTP-Redirect at %q", slo, sloURL)
		}
	}
}

func TestLogoutRequestURL(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	cfg := sloConfig(t, idp, now)
	cfg.Rand = io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{0xcd}, 20)), rand.Reader)
	sp := newTestSP(t, cfg)

	subject := LogoutSubject{NameID: "alice@contoso.example", NameIDFormat: samltest.NameIDFormatEmail, SessionIndex: "_session-1"}
	const relay = "Zm9vYmFyYmF6cXV4"
	redirect, id, err := sp.LogoutRequestURL(subject, relay)
	if err != nil {
		t.Fatalf("LogoutRequestURL() error: %v", err)
	}
	if want := "id-" + strings.Repeat("cd", 20); id != want {
		t.Errorf("LogoutRequestURL() ID = %q; want %q (from Config.Rand)", id, want)
	}
	if !strings.HasPrefix(redirect, idp.SSOURL+"?") {
		t.Errorf("LogoutRequestURL() = %q; want a URL at the IdP's SLO URL %q", redirect, idp.SSOURL)
	}
	raw, q := inflateQuery(t, redirect, "SAMLRequest")
	if q.Get("RelayState") != relay || q.Has("Signature") {
		t.Errorf("query = %v; want RelayState %q and no signature", q, relay)
	}
	var req crewjam.LogoutRequest
	if err := xml.Unmarshal(raw, &req); err != nil {
		t.Fatalf("SAMLRequest is not a LogoutRequest: %v\n%s", err, raw)
	}
	checks := []struct{ field, got, want string }{
		{"ID", req.ID, id},
		{"Destination", req.Destination, idp.SSOURL},
		{"Version", req.Version, "2.0"},
		{"IssueInstant", req.IssueInstant.UTC().Format(time.RFC3339Nano), now.Format(time.RFC3339Nano)},
	}
	if req.Issuer != nil {
		checks = append(checks, struct{ field, got, want string }{"Issuer", req.Issuer.Value, spEntityID})
	} else {
		t.Errorf("LogoutRequest has no Issuer:\n%s", raw)
	}
	if req.NameID != nil {
		checks = append(checks,
			struct{ field, got, want string }{"NameID", req.NameID.Value, subject.NameID},
			struct{ field, got, want string }{"NameID Format", req.NameID.Format, subject.NameIDFormat},
			struct{ field, got, want string }{"NameID NameQualifier", req.NameID.NameQualifier, ""},
			struct{ field, got, want string }{"NameID SPNameQualifier", req.NameID.SPNameQualifier, ""})
	} else {
		t.Errorf("LogoutRequest has no NameID:\n%s", raw)
	}
	if req.SessionIndex != nil {
		checks = append(checks, struct{ field, got, want string }{"SessionIndex", req.SessionIndex.Value, subject.SessionIndex})
	} else {
		t.Errorf("LogoutRequest has no SessionIndex:\n%s", raw)
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("LogoutRequest %s = %q; want %q", c.field, c.got, c.want)
		}
	}

	// Without a SessionIndex none is sent; without a NameID nothing is.
	redirect, _, err = sp.LogoutRequestURL(LogoutSubject{NameID: "a@contoso.example"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := inflateQuery(t, redirect, "SAMLRequest"); bytes.Contains(raw, []byte("SessionIndex")) {
		t.Errorf("LogoutRequest without a session index has one:\n%s", raw)
	}
	if _, _, err := sp.LogoutRequestURL(LogoutSubject{}, ""); err == nil {
		t.Errorf("LogoutRequestURL(no NameID) succeeded; want an error")
	}
	if _, _, err := sp.LogoutRequestURL(subject, strings.Repeat("x", 81)); !errors.Is(err, crewjam.ErrRelayStateTooLong) {
		t.Errorf("LogoutRequestURL(81-byte RelayState) error = %v; want ErrRelayStateTooLong", err)
	}
}

// deflateBomb is a redirect SAMLRequest that inflates to 4 MiB, 64 times
// MaxLogoutBytes (and 4 times crewjam's own limit).
func deflateBomb(t *testing.T) string {
	t.Helper()
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestSpeed)
	if _, err := fw.Write([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">`)); err != nil {
		t.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	for range 4 {
		if _, err := fw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func TestParseRedirectLogoutRequest(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	impostor := newTestIdP(t, now) // same entityID, key not in the metadata
	valid := samltest.LogoutRequestOptions{Destination: spSLO, SessionIndexes: []string{"_s1", "_s2"}}
	signedQuery := func(o samltest.LogoutRequestOptions) string {
		return idp.RedirectQuery(t, "SAMLRequest", idp.LogoutRequest(t, o), "relay-1", true)
	}
	with := func(change func(*samltest.LogoutRequestOptions)) string {
		o := valid
		change(&o)
		return signedQuery(o)
	}
	tampered := strings.Replace(signedQuery(valid), "RelayState=relay-1", "RelayState=relay-2", 1)
	responseAsRequest := idp.RedirectQuery(t, "SAMLRequest",
		idp.LogoutResponse(t, samltest.LogoutResponseOptions{Destination: spSLO, InResponseTo: "id-1"}), "", true)
	doctype := idp.RedirectQuery(t, "SAMLRequest",
		append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), idp.LogoutRequest(t, valid)...), "", true)

	tests := []struct {
		name  string
		query string
		want  Reason // "" when the request must be accepted
	}{
		{"query string signature (Azure)", signedQuery(valid), ""},
		{"enveloped signature", idp.RedirectQuery(t, "SAMLRequest", idp.LogoutRequest(t, func() samltest.LogoutRequestOptions {
			o := valid
			o.Sign = true
			return o
		}()), "", false), ""},
		{"clock skew tolerated", with(func(o *samltest.LogoutRequestOptions) { o.IssueInstant = now.Add(2 * time.Minute) }), ""},
		{"unsigned", idp.RedirectQuery(t, "SAMLRequest", idp.LogoutRequest(t, valid), "", false), ReasonSignature},
		{"signed by another key", impostor.RedirectQuery(t, "SAMLRequest", impostor.LogoutRequest(t, valid), "", true), ReasonSignature},
		{"RelayState changed after signing", tampered, ReasonSignature},
		{"SigAlg without Signature", strings.Split(signedQuery(valid), "&Signature=")[0], ReasonSignature},
		{"wrong issuer", with(func(o *samltest.LogoutRequestOptions) { o.Issuer = "https://sts.windows.net/other/" }), ReasonIssuer},
		{"wrong destination", with(func(o *samltest.LogoutRequestOptions) { o.Destination = otherACS }), ReasonDestination},
		{"no destination", with(func(o *samltest.LogoutRequestOptions) { o.Destination = "" }), ReasonDestination},
		{"issued too long ago", with(func(o *samltest.LogoutRequestOptions) { o.IssueInstant = now.Add(-10 * time.Minute) }), ReasonExpired},
		{"NotOnOrAfter passed", with(func(o *samltest.LogoutRequestOptions) {
			o.IssueInstant = now.Add(-30 * time.Second)
			o.NotOnOrAfter = now.Add(-crewjam.MaxClockSkew - time.Second)
		}), ReasonExpired},
		{"issued in the future", with(func(o *samltest.LogoutRequestOptions) { o.IssueInstant = now.Add(10 * time.Minute) }), ReasonNotYetValid},
		{"bad base64", "SAMLRequest=%25%25not-base64", ReasonMalformed},
		{"not deflated", "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("<x/>"))), ReasonMalformed},
		{"no SAMLRequest", "RelayState=x", ReasonMalformed},
		{"SAMLRequest twice", signedQuery(valid) + "&SAMLRequest=x", ReasonMalformed},
		{"SAMLRequest and SAMLResponse", signedQuery(valid) + "&SAMLResponse=x", ReasonMalformed},
		{"a LogoutResponse", responseAsRequest, ReasonMalformed},
		{"DOCTYPE", doctype, ReasonMalformed},
		{"query too long", "SAMLRequest=" + strings.Repeat("A", maxLogoutQuery), ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sp := newTestSP(t, sloConfig(t, idp, now))
			req, err := sp.ParseRedirectLogoutRequest(context.Background(), tt.query)
			if tt.want != "" {
				if got := ReasonOf(err); got != tt.want {
					t.Fatalf("ParseRedirectLogoutRequest() error = %v (reason %q); want reason %q", err, got, tt.want)
				}
				if req != nil {
					t.Errorf("ParseRedirectLogoutRequest() = %+v with a refusal; want nil", req)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRedirectLogoutRequest() error: %v", err)
			}
			if req.NameID != samltest.DefaultUser().Email || req.NameIDFormat != samltest.NameIDFormatEmail {
				t.Errorf("NameID = %q (%q); want %q (%q)", req.NameID, req.NameIDFormat, samltest.DefaultUser().Email, samltest.NameIDFormatEmail)
			}
			if strings.Join(req.SessionIndexes, ",") != "_s1,_s2" {
				t.Errorf("SessionIndexes = %q; want [_s1 _s2]", req.SessionIndexes)
			}
			if req.ID == "" {
				t.Errorf("ID is empty")
			}
		})
	}
}

func TestParseRedirectLogoutRequestDeflateBomb(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, sloConfig(t, idp, now))
	query := "SAMLRequest=" + url.QueryEscape(deflateBomb(t))
	start := time.Now()
	_, err := sp.ParseRedirectLogoutRequest(context.Background(), query)
	if ReasonOf(err) != ReasonMalformed || !errors.Is(err, errTooLarge) {
		t.Fatalf("ParseRedirectLogoutRequest(deflate bomb) error = %v; want a malformed_response refusal for size", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing the deflate bomb took %v; want it stopped at %d bytes", d, MaxLogoutBytes)
	}
}

func TestParseLogoutRequestReplay(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	cfg := sloConfig(t, idp, now)
	replay := &memReplay{}
	cfg.Replay = replay
	sp := newTestSP(t, cfg)
	query := idp.RedirectQuery(t, "SAMLRequest", idp.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: spSLO, ID: "_logout-1"}), "", true)
	if _, err := sp.ParseRedirectLogoutRequest(context.Background(), query); err != nil {
		t.Fatalf("first ParseRedirectLogoutRequest() error: %v", err)
	}
	if _, ok := replay.until[logoutReplayPrefix+"_logout-1"]; !ok {
		t.Errorf("replay cache holds %v; want %q", replay.until, logoutReplayPrefix+"_logout-1")
	}
	if _, err := sp.ParseRedirectLogoutRequest(context.Background(), query); ReasonOf(err) != ReasonReplay {
		t.Errorf("second ParseRedirectLogoutRequest() error = %v; want reason %q", err, ReasonReplay)
	}

	// A failing replay cache refuses the request, but returns it so that
	// the IdP can be answered.
	cfg.Replay = &memReplay{err: errors.New("store down")}
	sp = newTestSP(t, cfg)
	req, err := sp.ParseRedirectLogoutRequest(context.Background(), query)
	if ReasonOf(err) != ReasonInternal || req == nil || req.ID != "_logout-1" {
		t.Errorf("ParseRedirectLogoutRequest() with a failing replay cache = %+v, %v; want the request and reason %q", req, err, ReasonInternal)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sp.ParseRedirectLogoutRequest(ctx, query); ReasonOf(err) != ReasonInternal {
		t.Errorf("ParseRedirectLogoutRequest(cancelled context) error = %v; want reason %q", err, ReasonInternal)
	}
}

func TestParsePostLogoutRequest(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	signed := idp.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: spSLO, Sign: true})
	tests := []struct {
		name    string
		encoded string
		want    Reason
	}{
		{"enveloped signature", samltest.Encode(signed), ""},
		{"unsigned", samltest.Encode(idp.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: spSLO})), ReasonSignature},
		{"edited after signing", samltest.Encode(bytes.Replace(signed, []byte("alice@"), []byte("bob@"), 1)), ReasonSignature},
		{"bad base64", "%%%", ReasonMalformed},
		{"empty", " ", ReasonMalformed},
		{"too large", samltest.Encode(bytes.Repeat([]byte(" "), MaxLogoutBytes+1)), ReasonMalformed},
		{"not XML", samltest.Encode([]byte("hello")), ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sp := newTestSP(t, sloConfig(t, idp, now))
			req, err := sp.ParsePostLogoutRequest(context.Background(), tt.encoded)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("ParsePostLogoutRequest() error = %v (reason %q); want reason %q", err, got, tt.want)
			}
			if tt.want == "" && req.NameID != samltest.DefaultUser().Email {
				t.Errorf("NameID = %q; want %q", req.NameID, samltest.DefaultUser().Email)
			}
		})
	}
}

func TestParseLogoutResponse(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, sloConfig(t, idp, now))
	_, requestID, err := sp.LogoutRequestURL(LogoutSubject{NameID: "alice@contoso.example"}, "relay")
	if err != nil {
		t.Fatal(err)
	}
	valid := samltest.LogoutResponseOptions{Destination: spSLO, InResponseTo: requestID}
	query := func(change func(*samltest.LogoutResponseOptions), sign bool) string {
		o := valid
		if change != nil {
			change(&o)
		}
		return idp.RedirectQuery(t, "SAMLResponse", idp.LogoutResponse(t, o), "relay", sign)
	}
	tests := []struct {
		name      string
		query     string
		requestID string // "-" means none pending
		want      Reason
		partial   bool
		status    string // the StatusError code for ReasonIdPStatus
	}{
		{name: "success", query: query(nil, true)},
		{name: "partial logout", query: query(func(o *samltest.LogoutResponseOptions) { o.SubStatus = StatusPartialLogout }, true), partial: true},
		{name: "enveloped signature", query: query(func(o *samltest.LogoutResponseOptions) { o.Sign = true }, false)},
		{name: "unsigned", query: query(nil, false), want: ReasonSignature},
		{name: "InResponseTo mismatch", query: query(func(o *samltest.LogoutResponseOptions) { o.InResponseTo = "id-other" }, true), want: ReasonRequestID},
		{name: "no pending request", query: query(nil, true), requestID: "-", want: ReasonRequestID},
		{name: "wrong destination", query: query(func(o *samltest.LogoutResponseOptions) { o.Destination = otherACS }, true), want: ReasonDestination},
		{name: "wrong issuer", query: query(func(o *samltest.LogoutResponseOptions) { o.Issuer = "https://idp.example/" }, true), want: ReasonIssuer},
		{name: "expired", query: query(func(o *samltest.LogoutResponseOptions) { o.IssueInstant = now.Add(-time.Hour) }, true), want: ReasonExpired},
		{
			name: "IdP could not sign out",
			query: query(func(o *samltest.LogoutResponseOptions) {
				o.Status, o.StatusMessage = StatusResponder, "AADSTS0: try later"
			}, true),
			want:   ReasonIdPStatus,
			status: StatusResponder,
		},
		{
			name:  "failure status answering another request",
			query: query(func(o *samltest.LogoutResponseOptions) { o.Status, o.InResponseTo = StatusResponder, "id-other" }, true),
			want:  ReasonRequestID,
		},
		{name: "a LogoutRequest", query: idp.RedirectQuery(t, "SAMLResponse", idp.LogoutRequest(t, samltest.LogoutRequestOptions{Destination: spSLO}), "", true), want: ReasonMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := requestID
			if tt.requestID == "-" {
				id = ""
			}
			resp, err := sp.ParseLogoutResponse(tt.query, id)
			if got := ReasonOf(err); got != tt.want {
				t.Fatalf("ParseLogoutResponse() error = %v (reason %q); want reason %q", err, got, tt.want)
			}
			if tt.want == "" {
				if resp.InResponseTo != requestID || resp.Partial != tt.partial {
					t.Errorf("ParseLogoutResponse() = %+v; want InResponseTo %q and Partial %v", resp, requestID, tt.partial)
				}
				return
			}
			var st *StatusError
			if tt.status != "" && (!errors.As(err, &st) || st.Code != tt.status || st.Message == "") {
				t.Errorf("ParseLogoutResponse() error = %v; want a *StatusError with code %q and its message", err, tt.status)
			}
		})
	}
}

func TestLogoutResponseURL(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, sloConfig(t, idp, now))
	for _, status := range []string{StatusSuccess, StatusResponder} {
		redirect, err := sp.LogoutResponseURL("_req-1", "relay/state+1", status)
		if err != nil {
			t.Fatalf("LogoutResponseURL(%q) error: %v", status, err)
		}
		if !strings.HasPrefix(redirect, idp.SSOURL+"?") {
			t.Errorf("LogoutResponseURL() = %q; want a URL at %q", redirect, idp.SSOURL)
		}
		raw, q := inflateQuery(t, redirect, "SAMLResponse")
		if got := q.Get("RelayState"); got != "relay/state+1" {
			t.Errorf("RelayState = %q; want it echoed", got)
		}
		var resp crewjam.LogoutResponse
		if err := xml.Unmarshal(raw, &resp); err != nil {
			t.Fatalf("SAMLResponse is not a LogoutResponse: %v\n%s", err, raw)
		}
		checks := []struct{ field, got, want string }{
			{"InResponseTo", resp.InResponseTo, "_req-1"},
			{"Destination", resp.Destination, idp.SSOURL},
			{"Status", resp.Status.StatusCode.Value, status},
			{"IssueInstant", resp.IssueInstant.UTC().Format(time.RFC3339Nano), now.Format(time.RFC3339Nano)},
		}
		if resp.Issuer != nil {
			checks = append(checks, struct{ field, got, want string }{"Issuer", resp.Issuer.Value, spEntityID})
		} else {
			t.Errorf("LogoutResponse has no Issuer:\n%s", raw)
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("LogoutResponse %s = %q; want %q", c.field, c.got, c.want)
			}
		}
	}
	if _, err := sp.LogoutResponseURL("_req-1", "", ""); err == nil {
		t.Errorf("LogoutResponseURL(no status) succeeded; want an error")
	}
}
