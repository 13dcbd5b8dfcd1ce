package saml

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxXMLDepth is the deepest element nesting scanXML accepts. SAML
// responses and metadata nest about a dozen levels.
const maxXMLDepth = 64

// utf8BOM is the byte order mark Azure AD puts at the start of the metadata
// documents it serves.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// Errors scanXML reports; the callers turn them into their own, more
// specific errors.
var (
	errDoctype     = errors.New("document has a DOCTYPE declaration")
	errHTMLDoctype = errors.New("document is an HTML page")
	errNoRoot      = errors.New("no root element") // or text where it should start
)

// xmlSyntaxError is a document that is not well-formed XML, with the line
// on which the problem was found.
type xmlSyntaxError struct {
	msg  string
	line int
}

func (e *xmlSyntaxError) Error() string {
	return fmt.Sprintf("%s (line %d)", e.msg, e.line)
}

// scanXML reads data, a whole XML document, token by token and checks that
// it is well-formed: one root element, no text outside it, no element
// nested deeper than maxXMLDepth, UTF-8 only. It refuses any DOCTYPE
// (or other <!...> directive) wherever it occurs, so that no entity is ever
// declared, let alone expanded; an HTML doctype is reported as
// errHTMLDoctype so callers can explain what they were given.
//
// visit, if not nil, is called for every start element and every piece of
// character data, with the names of the open elements from the root down
// (for a start element, ending with that element). If visit returns an
// error, scanning stops and the error is returned as is.
func scanXML(data []byte, visit func(path []xml.Name, tok xml.Token) error) error {
	data = bytes.TrimPrefix(data, utf8BOM)
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true

	var path []xml.Name
	seenRoot := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			if !seenRoot {
				return errNoRoot
			}
			return nil
		}
		if err != nil {
			line, _ := d.InputPos()
			msg := err.Error()
			var syntax *xml.SyntaxError
			if errors.As(err, &syntax) {
				msg, line = syntax.Msg, syntax.Line
			}
			return &xmlSyntaxError{msg: msg, line: line}
		}

		switch t := tok.(type) {
		case xml.Directive:
			if isHTMLDoctype(t) {
				return errHTMLDoctype
			}
			return errDoctype
		case xml.StartElement:
			if len(path) == 0 && seenRoot {
				line, _ := d.InputPos()
				return &xmlSyntaxError{msg: "more than one root element", line: line}
			}
			// Hardening (issue 4, found by hardening_test.go): refuse names
			// that are not namespace-well-formed, such as <:Assertion> or
			// xmlns:="...", which encoding/xml reads as a local name
			// containing a colon while other XML readers (etree, the
			// canonicalizer) read them differently (CVE-2020-29509 family).
			if name, ok := colonName(t); ok {
				line, _ := d.InputPos()
				return &xmlSyntaxError{msg: fmt.Sprintf("name %q is not namespace-well-formed", name), line: line}
			}
			seenRoot = true
			path = append(path, t.Name)
			if len(path) > maxXMLDepth {
				line, _ := d.InputPos()
				return &xmlSyntaxError{msg: fmt.Sprintf("elements nested more than %d deep", maxXMLDepth), line: line}
			}
			if visit != nil {
				if err := visit(path, t); err != nil {
					return err
				}
			}
		case xml.EndElement:
			path = path[:len(path)-1]
		case xml.CharData:
			if len(path) == 0 {
				if len(bytes.TrimSpace(t)) > 0 && !seenRoot {
					return errNoRoot
				}
				if len(bytes.TrimSpace(t)) > 0 {
					line, _ := d.InputPos()
					return &xmlSyntaxError{msg: fmt.Sprintf("text outside the root element: %q", truncate(string(bytes.TrimSpace(t)), 40)), line: line}
				}
				continue
			}
			if visit != nil {
				if err := visit(path, t); err != nil {
					return err
				}
			}
		}
	}
}

// colonName returns the first name in start, the element's or an
// attribute's, whose local part is empty or holds a colon, which no
// namespace-well-formed document has, and whether there is one.
func colonName(start xml.StartElement) (string, bool) {
	if start.Name.Local == "" || strings.Contains(start.Name.Local, ":") {
		return start.Name.Local, true
	}
	for _, a := range start.Attr {
		if a.Name.Local == "" || strings.Contains(a.Name.Local, ":") {
			return a.Name.Local, true
		}
	}
	return "", false
}

// isHTMLDoctype reports whether d is <!DOCTYPE html ...> without an
// internal subset (which no HTML page has).
func isHTMLDoctype(d xml.Directive) bool {
	fields := strings.Fields(string(d))
	return !strings.Contains(string(d), "[") && len(fields) >= 2 && strings.EqualFold(fields[0], "DOCTYPE") && strings.EqualFold(fields[1], "html")
}

// attr returns the value of the unqualified attribute name of start, or "".
func attr(start xml.StartElement, name string) string {
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// truncate shortens s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
