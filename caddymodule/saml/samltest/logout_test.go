package samltest

import (
	"bytes"
	"compress/flate"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLogoutRequest(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	at := time.Now().UTC().Truncate(time.Second)
	tests := []struct {
		name string
		o    LogoutRequestOptions
		sign bool
	}{
		{"defaults", LogoutRequestOptions{Destination: "https://sp.example/slo", IssueInstant: at}, false},
		{"signed with session indexes", LogoutRequestOptions{
			Destination: "https://sp.example/slo", IssueInstant: at, NameID: "bob@example.com",
			SessionIndexes: []string{"_a", "_b"}, NotOnOrAfter: at.Add(time.Minute), ID: "_req1", Sign: true,
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := parse(t, idp.LogoutRequest(t, tt.o))
			if root.Tag != "LogoutRequest" || root.NamespaceURI() != nsProtocol {
				t.Fatalf("root = <%s> in %q; want a samlp:LogoutRequest", root.Tag, root.NamespaceURI())
			}
			wantNameID := tt.o.NameID
			if wantNameID == "" {
				wantNameID = DefaultUser().Email
			}
			checks := []struct{ what, got, want string }{
				{"Destination", root.SelectAttrValue("Destination", ""), tt.o.Destination},
				{"IssueInstant", root.SelectAttrValue("IssueInstant", ""), at.Format("2006-01-02T15:04:05.000Z")},
				{"Issuer", root.FindElement("./Issuer").Text(), idp.EntityID},
				{"NameID", root.FindElement("./NameID").Text(), wantNameID},
				{"NameID Format", root.FindElement("./NameID").SelectAttrValue("Format", ""), NameIDFormatEmail},
			}
			if tt.o.ID != "" {
				checks = append(checks, struct{ what, got, want string }{"ID", root.SelectAttrValue("ID", ""), tt.o.ID})
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("LogoutRequest %s = %q; want %q", c.what, c.got, c.want)
				}
			}
			var indexes []string
			for _, el := range root.FindElements("./SessionIndex") {
				indexes = append(indexes, el.Text())
			}
			if strings.Join(indexes, ",") != strings.Join(tt.o.SessionIndexes, ",") {
				t.Errorf("SessionIndexes = %q; want %q", indexes, tt.o.SessionIndexes)
			}
			hasSig := root.FindElement("./Signature") != nil
			if hasSig != tt.sign {
				t.Fatalf("LogoutRequest signed = %v; want %v", hasSig, tt.sign)
			}
			if tt.sign {
				if err := verify(t, root, idp.Cert, at); err != nil {
					t.Errorf("the LogoutRequest signature does not verify: %v", err)
				}
			}
		})
	}
}

func TestLogoutResponse(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	at := time.Now()
	root := parse(t, idp.LogoutResponse(t, LogoutResponseOptions{
		Destination: "https://sp.example/slo", InResponseTo: "id-1", IssueInstant: at,
		Status: StatusResponder, SubStatus: StatusRequestDenied, StatusMessage: "AADSTS0: nope", Sign: true,
	}))
	checks := []struct{ what, got, want string }{
		{"root", root.Tag, "LogoutResponse"},
		{"InResponseTo", root.SelectAttrValue("InResponseTo", ""), "id-1"},
		{"Destination", root.SelectAttrValue("Destination", ""), "https://sp.example/slo"},
		{"Issuer", root.FindElement("./Issuer").Text(), idp.EntityID},
		{"StatusCode", root.FindElement("./Status/StatusCode").SelectAttrValue("Value", ""), StatusResponder},
		{"second-level StatusCode", root.FindElement("./Status/StatusCode/StatusCode").SelectAttrValue("Value", ""), StatusRequestDenied},
		{"StatusMessage", root.FindElement("./Status/StatusMessage").Text(), "AADSTS0: nope"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("LogoutResponse %s = %q; want %q", c.what, c.got, c.want)
		}
	}
	if err := verify(t, root, idp.Cert, at); err != nil {
		t.Errorf("the LogoutResponse signature does not verify: %v", err)
	}
	if parse(t, idp.LogoutResponse(t, LogoutResponseOptions{})).FindElement("./Status/StatusCode").SelectAttrValue("Value", "") != StatusSuccess {
		t.Errorf("LogoutResponse(zero options) status is not Success")
	}
}

func TestRedirectQuery(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	msg := idp.LogoutRequest(t, LogoutRequestOptions{Destination: "https://sp.example/slo"})
	for _, sign := range []bool{false, true} {
		raw := idp.RedirectQuery(t, "SAMLRequest", msg, "relay+state/1", sign)
		q, err := url.ParseQuery(raw)
		if err != nil {
			t.Fatalf("RedirectQuery() = %q: %v", raw, err)
		}
		if got := q.Get("RelayState"); got != "relay+state/1" {
			t.Errorf("RelayState = %q; want %q", got, "relay+state/1")
		}
		deflated, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
		if err != nil {
			t.Fatalf("SAMLRequest is not base64: %v", err)
		}
		inflated, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
		if err != nil || !bytes.Equal(inflated, msg) {
			t.Errorf("SAMLRequest inflates to %q, %v; want the message", inflated, err)
		}
		if q.Has("Signature") != sign || q.Has("SigAlg") != sign {
			t.Errorf("RedirectQuery(sign=%v) = %q; want SigAlg and Signature only when signed", sign, raw)
		}
		if !sign {
			continue
		}
		if got := q.Get("SigAlg"); got != SigAlgRSASHA256 {
			t.Errorf("SigAlg = %q; want %q", got, SigAlgRSASHA256)
		}
		signed, _, _ := strings.Cut(raw, "&Signature=")
		sig, err := base64.StdEncoding.DecodeString(q.Get("Signature"))
		if err != nil {
			t.Fatalf("Signature is not base64: %v", err)
		}
		if err := idp.Cert.CheckSignature(x509.SHA256WithRSA, []byte(signed), sig); err != nil {
			t.Errorf("the query signature does not verify with the IdP certificate: %v", err)
		}
	}
}

func TestMetadataNoSLO(t *testing.T) {
	t.Parallel()
	idp := NewIdP(t, tenant)
	if n := len(parse(t, idp.Metadata(t)).FindElements("./IDPSSODescriptor/SingleLogoutService")); n != 1 {
		t.Errorf("Metadata() has %d SingleLogoutServices; want 1", n)
	}
	if n := len(parse(t, idp.MetadataWith(t, MetadataOptions{NoSLO: true})).FindElements("./IDPSSODescriptor/SingleLogoutService")); n != 0 {
		t.Errorf("MetadataWith(NoSLO) has %d SingleLogoutServices; want 0", n)
	}
}
