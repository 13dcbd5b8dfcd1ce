package saml

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
)

const testRequestID = "id-4f6e2c9d8a7b1e3f5d0c2b4a6e8f1d3c5b7a9e0f"

func TestParseResponse(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	// impostor has the same entityID but a key that is not in the metadata.
	impostor := newTestIdP(t, now)
	// A response whose signed assertion was edited afterwards.
	tampered := bytes.ReplaceAll(
		idp.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}),
		[]byte("alice@contoso.example"), []byte("mallory@contoso.example"))
	// Signature wrapping: an unsigned assertion for another user placed
	// before the signed one.
	wrapped := wrapAssertion(t,
		idp.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}),
		idp.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID, Unsigned: true,
			User: samltest.User{ObjectID: "x", Email: "mallory@contoso.example"}}))

	tests := []struct {
		name       string
		options    func(*samltest.ResponseOptions) // changes the options of a valid response
		signer     *samltest.IdP                   // nil means idp
		raw        []byte                          // the response XML, instead of one made from options
		encoded    string                          // the SAMLResponse, instead of one made from raw
		config     func(*Config)
		requestIDs []string // nil means testRequestID only
		want       Reason   // "" when the response must be accepted
	}{
		{name: "assertion signed (Azure default)"},
		{name: "response signed", options: func(o *samltest.ResponseOptions) { o.SignResponse = true }},
		{name: "response and assertion signed", options: func(o *samltest.ResponseOptions) { o.SignResponse, o.SignAssertion = true, true }},
		{name: "one of several pending requests", requestIDs: []string{"id-older", testRequestID}},
		{name: "clock skew tolerated", options: func(o *samltest.ResponseOptions) { o.IssueInstant = now.Add(2 * time.Minute) }},
		{
			name:       "IdP-initiated allowed",
			options:    func(o *samltest.ResponseOptions) { o.InResponseTo = "" },
			config:     func(c *Config) { c.AllowIdPInitiated = true },
			requestIDs: []string{},
		},
		{
			name:       "IdP-initiated refused",
			options:    func(o *samltest.ResponseOptions) { o.InResponseTo = "" },
			requestIDs: []string{},
			want:       ReasonUnsolicited,
		},
		{
			name:    "IdP-initiated refused with a pending request",
			options: func(o *samltest.ResponseOptions) { o.InResponseTo = "" },
			want:    ReasonUnsolicited,
		},
		{name: "unknown InResponseTo", options: func(o *samltest.ResponseOptions) { o.InResponseTo = "id-not-ours" }, want: ReasonRequestID},
		{name: "InResponseTo without pending request", requestIDs: []string{}, want: ReasonRequestID},
		{
			name:    "InResponseTo with IdP-initiated allowed",
			options: func(o *samltest.ResponseOptions) { o.InResponseTo = "id-not-ours" },
			config:  func(c *Config) { c.AllowIdPInitiated = true },
			want:    ReasonRequestID,
		},
		{name: "another provider's ACS", options: func(o *samltest.ResponseOptions) { o.Destination = otherACS }, want: ReasonDestination},
		{name: "wrong Recipient", options: func(o *samltest.ResponseOptions) { o.Recipient = otherACS }, want: ReasonDestination},
		{name: "wrong Audience", options: func(o *samltest.ResponseOptions) { o.Audience = "https://engage.example.com/sso/saml/fabrikam" }, want: ReasonAudience},
		{name: "no Audience", options: func(o *samltest.ResponseOptions) { o.Audience = "" }, want: ReasonAudience},
		{name: "wrong Issuer", options: func(o *samltest.ResponseOptions) {
			o.Issuer = "https://sts.windows.net/0f0f0f0f-0000-4000-8000-000000000000/"
		}, want: ReasonIssuer},
		{name: "expired", options: func(o *samltest.ResponseOptions) { o.IssueInstant = now.Add(-2 * time.Hour) }, want: ReasonExpired},
		{
			name: "conditions expired",
			options: func(o *samltest.ResponseOptions) {
				o.IssueInstant = now.Add(-time.Minute)
				o.NotOnOrAfter = now.Add(-4 * time.Minute)
			},
			want: ReasonExpired,
		},
		{name: "not yet valid", options: func(o *samltest.ResponseOptions) { o.IssueInstant = now.Add(10 * time.Minute) }, want: ReasonNotYetValid},
		{
			name:    "conditions not yet valid",
			options: func(o *samltest.ResponseOptions) { o.NotBefore = now.Add(5 * time.Minute) },
			want:    ReasonNotYetValid,
		},
		{name: "tampered after signing", raw: tampered, want: ReasonSignature},
		{name: "unsigned", options: func(o *samltest.ResponseOptions) { o.Unsigned = true }, want: ReasonSignature},
		{name: "signature wrapping", raw: wrapped, want: ReasonMalformed},
		{name: "signed by a key not in the metadata", signer: impostor, want: ReasonUntrustedCert},
		{
			name:    "response signed by a key not in the metadata",
			options: func(o *samltest.ResponseOptions) { o.SignResponse = true },
			signer:  impostor,
			want:    ReasonUntrustedCert,
		},
		{
			name: "IdP error status",
			options: func(o *samltest.ResponseOptions) {
				o.Status, o.SubStatus = samltest.StatusRequester, samltest.StatusRequestDenied
				o.StatusMessage = "AADSTS50105: The signed in user is not assigned to a role for the application."
			},
			want: ReasonIdPStatus,
		},
		{name: "malformed base64", encoded: "PHNhbWxwOlJlc3BvbnNl!!!", want: ReasonMalformed},
		{name: "empty", encoded: " \r\n", want: ReasonMalformed},
		{name: "not XML", raw: []byte("hello, world"), want: ReasonMalformed},
		{name: "truncated", raw: []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"><Issuer`), want: ReasonMalformed},
		{name: "not a Response", raw: idp.Metadata(t), want: ReasonMalformed},
		{
			name: "DOCTYPE",
			raw: []byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
				`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_1" Version="2.0">&x;</samlp:Response>`),
			want: ReasonMalformed,
		},
		{
			name: "encrypted assertion, encryption off",
			raw: []byte(`<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_1" Version="2.0">` +
				`<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>` +
				`<EncryptedAssertion xmlns="urn:oasis:names:tc:SAML:2.0:assertion"/></samlp:Response>`),
			want: ReasonEncryptionNotSetUp,
		},
		{name: "oversized", config: func(c *Config) { c.MaxResponseBytes = 4096 }, want: ReasonMalformed},
		{name: "oversized before decoding", encoded: strings.Repeat("A", 2*base64.StdEncoding.EncodedLen(DefaultMaxResponseBytes)+4), want: ReasonMalformed},
		{
			name: "certificate expired",
			options: func(o *samltest.ResponseOptions) {
				o.IssueInstant = idp.Cert.NotAfter.Add(time.Hour)
			},
			config: func(c *Config) {
				later := idp.Cert.NotAfter.Add(time.Hour)
				c.Now = func() time.Time { return later }
			},
			want: ReasonCertificateExpired,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			if tt.config != nil {
				tt.config(&cfg)
			}
			sp := newTestSP(t, cfg)

			opts := samltest.ResponseOptions{
				Destination:  spACS,
				Audience:     spEntityID,
				InResponseTo: testRequestID,
				User:         samltest.DefaultUser(),
			}
			if tt.options != nil {
				tt.options(&opts)
			}
			signer := idp
			if tt.signer != nil {
				signer = tt.signer
			}
			raw := tt.raw
			if raw == nil {
				raw = signer.Response(t, opts)
			}
			encoded := samltest.Encode(raw)
			if tt.encoded != "" {
				encoded = tt.encoded
			}
			requestIDs := tt.requestIDs
			if requestIDs == nil {
				requestIDs = []string{testRequestID}
			}

			got, err := sp.ParseResponse(context.Background(), encoded, requestIDs)
			if tt.want != "" {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("ParseResponse() = %+v, %v; want an *Error with reason %q", got, err, tt.want)
				}
				t.Logf("refused: %v", err)
				if e.Reason != tt.want {
					t.Errorf("ParseResponse() reason = %q; want %q (error: %v)", e.Reason, tt.want, err)
				}
				if got != nil {
					t.Errorf("ParseResponse() = %+v with an error; want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResponse() error: %v", err)
			}
			checkAssertion(t, got, idp, opts)
		})
	}
}

// checkAssertion checks that a is the assertion of a response made by idp
// with options o.
func checkAssertion(t *testing.T, a *Assertion, idp *samltest.IdP, o samltest.ResponseOptions) {
	t.Helper()
	issued := o.IssueInstant
	if issued.IsZero() {
		issued = idp.Now()
	}
	if a.ID == "" || !strings.HasPrefix(a.ID, "_") {
		t.Errorf("ID = %q; want the assertion's Azure-style ID", a.ID)
	}
	checks := []struct{ field, got, want string }{
		{"Issuer", a.Issuer, idp.EntityID},
		{"InResponseTo", a.InResponseTo, o.InResponseTo},
		{"NameID", a.NameID, o.User.Email},
		{"NameIDFormat", a.NameIDFormat, samltest.NameIDFormatEmail},
		{"SessionIndex", a.SessionIndex, a.ID},
		{"IssueInstant", a.IssueInstant.UTC().Format(time.RFC3339Nano), issued.UTC().Format(time.RFC3339Nano)},
		{"NotOnOrAfter", a.NotOnOrAfter.UTC().Format(time.RFC3339Nano), issued.Add(70 * time.Minute).UTC().Format(time.RFC3339Nano)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("Assertion %s = %q; want %q", c.field, c.got, c.want)
		}
	}
	want := map[string][]string{}
	for _, at := range idp.Attributes(o.User) {
		want[at.Name] = at.Values
	}
	if !reflect.DeepEqual(a.Attributes, want) {
		t.Errorf("Attributes = %q; want %q", a.Attributes, want)
	}
	if got := a.Attributes[samltest.ClaimGroups]; len(got) != 2 {
		t.Errorf("Attributes[groups] = %q; want the 2 groups in order", got)
	}
}

// wrapAssertion returns signed, a response with a signed assertion, with the
// assertion of unsigned inserted before the signed one.
func wrapAssertion(t *testing.T, signed, unsigned []byte) []byte {
	t.Helper()
	start := bytes.Index(unsigned, []byte("<Assertion "))
	end := bytes.Index(unsigned, []byte("</Assertion>"))
	at := bytes.Index(signed, []byte("<Assertion "))
	if start < 0 || end < 0 || at < 0 {
		t.Fatal("wrapAssertion: no Assertion in the responses")
	}
	evil := unsigned[start : end+len("</Assertion>")]
	out := append([]byte{}, signed[:at]...)
	out = append(out, evil...)
	return append(out, signed[at:]...)
}

func TestParseResponseDetails(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, testConfig(t, idp, now))
	parse := func(o samltest.ResponseOptions) error {
		o.Destination, o.Audience, o.InResponseTo = spACS, spEntityID, testRequestID
		_, err := sp.ParseResponse(context.Background(), samltest.Encode(idp.Response(t, o)), []string{testRequestID})
		return err
	}

	// Crewjam's typed errors stay reachable for logs and callers.
	err := parse(samltest.ResponseOptions{IssueInstant: now.Add(-time.Hour)})
	if !errors.Is(err, crewjam.ErrExpired) {
		t.Errorf("ParseResponse(expired) error = %v; want one matching crewjam's ErrExpired", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "saml response refused (expired): ") {
		t.Errorf("ParseResponse(expired) error = %q; want it to start with the reason", msg)
	}

	// An IdP error carries the status for the logs.
	err = parse(samltest.ResponseOptions{
		Status: samltest.StatusRequester, SubStatus: samltest.StatusRequestDenied,
		StatusMessage: "AADSTS50105: not assigned",
	})
	var st *StatusError
	if !errors.As(err, &st) {
		t.Fatalf("ParseResponse(IdP error) error = %v; want a *StatusError", err)
	}
	want := StatusError{Code: samltest.StatusRequester, SubCode: samltest.StatusRequestDenied, Message: "AADSTS50105: not assigned"}
	if *st != want {
		t.Errorf("ParseResponse(IdP error) status = %+v; want %+v", *st, want)
	}
}

func TestParseResponseReplay(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	replay := &memReplay{}
	cfg := testConfig(t, idp, now)
	cfg.Replay = replay
	cfg.AllowIdPInitiated = true
	sp := newTestSP(t, cfg)

	tests := []struct {
		name         string
		inResponseTo string
		requestIDs   []string
	}{
		{"SP-initiated", testRequestID, []string{testRequestID}},
		{"IdP-initiated", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{
				Destination: spACS, Audience: spEntityID, InResponseTo: tt.inResponseTo,
			}))
			a, err := sp.ParseResponse(context.Background(), resp, tt.requestIDs)
			if err != nil {
				t.Fatalf("first ParseResponse() error: %v", err)
			}
			_, err = sp.ParseResponse(context.Background(), resp, tt.requestIDs)
			if r := ReasonOf(err); r != ReasonReplay {
				t.Errorf("second ParseResponse() reason = %q (%v); want %q", r, err, ReasonReplay)
			}

			replay.mu.Lock()
			until, ok := replay.until[a.ID]
			replay.mu.Unlock()
			// Kept until the Conditions NotOnOrAfter (70 minutes), plus skew.
			if want := a.NotOnOrAfter.Add(crewjam.MaxClockSkew); !ok || !until.Equal(want) {
				t.Errorf("replay cache holds %q until %v (%v); want until %v", a.ID, until, ok, want)
			}
		})
	}
}

// failingReplay is a ReplayCache whose store is unreachable.
type failingReplay struct{}

func (failingReplay) MarkAssertionUsed(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("dial tcp 10.0.0.7:6379: connection refused")
}

func TestParseResponseFailsClosed(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}))
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		replay ReplayCache
		ctx    context.Context
	}{
		{"replay cache unreachable", failingReplay{}, context.Background()},
		{"context canceled", &memReplay{}, canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, idp, now)
			cfg.Replay = tt.replay
			sp := newTestSP(t, cfg)
			a, err := sp.ParseResponse(tt.ctx, resp, []string{testRequestID})
			if r := ReasonOf(err); a != nil || r != ReasonInternal {
				t.Errorf("ParseResponse() = %v, reason %q (%v); want nil, %q", a, r, err, ReasonInternal)
			}
		})
	}
}

// TestParseResponseContextReachesReplayCache checks that the replay cache
// is called with the caller's context.
func TestParseResponseContextReachesReplayCache(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	cfg := testConfig(t, idp, now)
	type key struct{}
	var got any
	cfg.Replay = replayFunc(func(ctx context.Context, id string, until time.Time) (bool, error) {
		got = ctx.Value(key{})
		return true, nil
	})
	sp := newTestSP(t, cfg)
	resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}))
	ctx := context.WithValue(context.Background(), key{}, "request-42")
	if _, err := sp.ParseResponse(ctx, resp, []string{testRequestID}); err != nil {
		t.Fatal(err)
	}
	if got != "request-42" {
		t.Errorf("replay cache saw context value %v; want %q", got, "request-42")
	}
}

type replayFunc func(ctx context.Context, id string, until time.Time) (bool, error)

func (f replayFunc) MarkAssertionUsed(ctx context.Context, id string, until time.Time) (bool, error) {
	return f(ctx, id, until)
}

// TestParseResponseKeyRollover checks that a response signed with any of
// the IdP's signing certificates is accepted.
func TestParseResponseKeyRollover(t *testing.T) {
	t.Parallel()
	now := testNow()
	oldKey := newTestIdP(t, now)
	newKey := newTestIdP(t, now)
	m, err := ParseMetadata(oldKey.MetadataWith(t, samltest.MetadataOptions{SigningCerts: []*x509.Certificate{oldKey.Cert, newKey.Cert}}))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, oldKey, now)
	cfg.IdP = m
	sp := newTestSP(t, cfg)
	for _, signer := range []*samltest.IdP{oldKey, newKey} {
		resp := samltest.Encode(signer.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}))
		if _, err := sp.ParseResponse(context.Background(), resp, []string{testRequestID}); err != nil {
			t.Errorf("ParseResponse(signed with %v) error: %v", signer.Cert.SerialNumber, err)
		}
	}
}

// TestParseResponseConcurrentReplay posts the same response to one SP from
// many goroutines at once: exactly one must be accepted.
func TestParseResponseConcurrentReplay(t *testing.T) {
	t.Parallel()
	now := testNow()
	idp := newTestIdP(t, now)
	sp := newTestSP(t, testConfig(t, idp, now))
	resp := samltest.Encode(idp.Response(t, samltest.ResponseOptions{Destination: spACS, Audience: spEntityID, InResponseTo: testRequestID}))

	const n = 8
	reasons := make(chan Reason, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := sp.ParseResponse(context.Background(), resp, []string{testRequestID})
			reasons <- ReasonOf(err)
		}()
	}
	wg.Wait()
	close(reasons)
	counts := map[Reason]int{}
	for r := range reasons {
		counts[r]++
	}
	if counts[""] != 1 || counts[ReasonReplay] != n-1 {
		t.Errorf("%d concurrent ParseResponse() calls gave %v; want 1 accepted and %d %q", n, counts, n-1, ReasonReplay)
	}
}
