package saml

import (
	"encoding/xml"
	"errors"
	"strings"
	"testing"
)

func TestScanXML(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat("<a>", maxXMLDepth+1) + strings.Repeat("</a>", maxXMLDepth+1)
	tests := []struct {
		name    string
		doc     string
		want    error  // a sentinel, or nil for a syntax error or success
		message string // a part of the syntax error, "" for success
	}{
		{name: "well-formed", doc: "\ufeff<?xml version=\"1.0\"?>\n<!-- c --><a x=\"1\"><b>t</b></a>\n"},
		{name: "max depth", doc: strings.Repeat("<a>", maxXMLDepth) + strings.Repeat("</a>", maxXMLDepth)},
		{name: "empty", doc: "", want: errNoRoot},
		{name: "comment only", doc: "<!-- nothing -->", want: errNoRoot},
		{name: "text", doc: "plain text", want: errNoRoot},
		{name: "DOCTYPE", doc: `<!DOCTYPE a SYSTEM "http://example.com/a.dtd"><a/>`, want: errDoctype},
		{name: "ENTITY inside an element", doc: `<a><!ENTITY x "y"></a>`, want: errDoctype},
		{name: "XHTML DOCTYPE", doc: `<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd"><html/>`, want: errHTMLDoctype},
		{name: "HTML DOCTYPE with entities", doc: `<!DOCTYPE html [<!ENTITY x "y">]><html>&x;</html>`, want: errDoctype},
		{name: "lower-case HTML DOCTYPE", doc: "<!doctype html><html></html>", want: errHTMLDoctype},
		{name: "HTML5 DOCTYPE", doc: "<!DOCTYPE HTML><html></html>", want: errHTMLDoctype},
		{name: "too deep", doc: deep, message: "nested more than 64 deep"},
		{name: "two roots", doc: "<a/><b/>", message: "more than one root element (line 1)"},
		{name: "text after root", doc: "<a/>\ntrailing", message: `text outside the root element: "trailing" (line 2)`},
		{name: "unclosed", doc: "<a>\n<b>", message: "unexpected EOF (line 2)"},
		{name: "mismatched", doc: "<a></b>", message: "element <a> closed by </b>"},
		{name: "latin-1", doc: `<?xml version="1.0" encoding="ISO-8859-1"?><a/>`, message: "ISO-8859-1"},
		{name: "invalid UTF-8", doc: "<a>\xff</a>", message: "invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := scanXML([]byte(tt.doc), nil)
			var syntax *xmlSyntaxError
			switch {
			case tt.want != nil:
				if !errors.Is(err, tt.want) {
					t.Errorf("scanXML(%q) = %v; want %v", tt.doc, err, tt.want)
				}
			case tt.message == "":
				if err != nil {
					t.Errorf("scanXML(%q) = %v; want nil", tt.doc, err)
				}
			case !errors.As(err, &syntax) || !strings.Contains(err.Error(), tt.message):
				t.Errorf("scanXML(%q) = %v; want a syntax error containing %q", tt.doc, err, tt.message)
			}
		})
	}
}

func TestScanXMLVisit(t *testing.T) {
	t.Parallel()
	doc := `<r xmlns="urn:r" xmlns:p="urn:p"><p:a>one</p:a><b><c>two</c></b></r>`
	var got []string
	err := scanXML([]byte(doc), func(path []xml.Name, tok xml.Token) error {
		var names []string
		for _, n := range path {
			names = append(names, n.Space+" "+n.Local)
		}
		entry := strings.Join(names, "/")
		if text, ok := tok.(xml.CharData); ok {
			entry += "=" + string(text)
		}
		got = append(got, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"urn:r r",
		"urn:r r/urn:p a",
		"urn:r r/urn:p a=one",
		"urn:r r/urn:r b",
		"urn:r r/urn:r b/urn:r c",
		"urn:r r/urn:r b/urn:r c=two",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("scanXML visited\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	stop := errors.New("stop")
	if err := scanXML([]byte(doc), func([]xml.Name, xml.Token) error { return stop }); err != stop {
		t.Errorf("scanXML() with a failing visit = %v; want the visit's error", err)
	}
}
