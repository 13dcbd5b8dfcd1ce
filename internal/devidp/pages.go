package devidp

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"go.uber.org/zap"
)

//go:embed templates/*.html
var templateFS embed.FS

// autoSubmitScript posts the SAML Response form as soon as the page loads.
// The form has a visible Continue button for browsers without JavaScript.
const autoSubmitScript = `document.getElementById("SAMLResponseForm").submit();`

// postFormTemplate is the page that carries the SAML Response to the
// service provider's assertion consumer service. It is executed with a
// saml.IdpAuthnRequestForm.
const postFormTemplate = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<title>Signing you in…</title>
<style>body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#201f1e;max-width:40rem;margin:3rem auto;padding:0 1rem}button{font:inherit;padding:.5rem 1.5rem;border:0;border-radius:4px;background:#0f6cbd;color:#fff;cursor:pointer}code{word-break:break-all}</style>
</head>
<body>
<p>Signing you in to <code>{{.URL}}</code>…</p>
<form method="post" action="{{.URL}}" id="SAMLResponseForm">
<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">
{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}
<button type="submit" id="SAMLSubmitButton">Continue</button>
</form>
<script>` + autoSubmitScript + `</script>
</body>
</html>
`

// pageCSP is the Content-Security-Policy of the IdP's own pages: no
// scripts, and forms only to the IdP.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// postFormCSP returns the Content-Security-Policy of the page built from
// postFormTemplate: its one script, and a form to any http(s) URL (the
// service provider's ACS, and wherever the ACS redirects).
func postFormCSP() string {
	sum := sha256.Sum256([]byte(autoSubmitScript))
	return "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(sum[:]) +
		"'; form-action http: https:; frame-ancestors 'none'; base-uri 'none'"
}

// setPageHeaders sets the headers of an HTML page that must not be cached
// or framed.
func setPageHeaders(h http.Header, csp string) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
}

// pages are the parsed HTML templates.
type pages struct {
	index, login, myApps, errorPage *template.Template
	postForm                        *template.Template
}

// groupNames are the display names of the demo directory's groups.
var groupNames = map[string]string{
	GroupAgents:         "Engage Agents",
	GroupSupervisors:    "Engage Supervisors",
	GroupAccountHolders: "Engage Account Holders",
	GroupMarketing:      "Marketing",
}

func parsePages() (*pages, error) {
	layout, err := template.New("layout.html").Funcs(template.FuncMap{
		"groupName": func(id string) string { return groupNames[id] },
		"date":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	}).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	page := func(name string) (*template.Template, error) {
		t, err := layout.Clone()
		if err != nil {
			return nil, err
		}
		if t, err = t.ParseFS(templateFS, "templates/"+name); err != nil {
			return nil, fmt.Errorf("parse templates: %w", err)
		}
		return t, nil
	}
	p := &pages{}
	if p.index, err = page("index.html"); err != nil {
		return nil, err
	}
	if p.login, err = page("login.html"); err != nil {
		return nil, err
	}
	if p.myApps, err = page("myapps.html"); err != nil {
		return nil, err
	}
	if p.errorPage, err = page("error.html"); err != nil {
		return nil, err
	}
	if p.postForm, err = template.New("post").Parse(postFormTemplate); err != nil {
		return nil, fmt.Errorf("parse templates: %w", err)
	}
	return p, nil
}

// basePage is what every page built on the layout shows.
type basePage struct {
	Title string
	Nav   struct{ Home, MyApps, Metadata string }
	Users []User
}

// indexPage is the data of index.html.
type indexPage struct {
	basePage
	EntityID, TenantID            string
	MetadataURL, ShortMetadataURL string
	SSOURL, MyAppsURL             string
	CertSubject, CertThumbprint   string
	CertNotAfter                  time.Time
	ServiceProviders              []spEntry
}

// loginPage is the data of login.html.
type loginPage struct {
	basePage
	Action  string
	LoginID string
	AppID   string // the entity ID of the SP being signed in to
	Email   string
	Error   string
}

// myAppsPage is the data of myapps.html.
type myAppsPage struct {
	basePage
	Action     string
	Apps       []spEntry
	Email      string
	RelayState string
	Error      string
}

// errorPage is the data of error.html.
type errorPage struct {
	basePage
	Status        int
	Heading       string
	Message       string
	AzureCode     string
	EntityID      string
	ShowSPs       bool
	SPs           []spEntry
	CorrelationID string
}

// base returns the basePage of a page with the given title.
func (s *Server) base(title string) basePage {
	b := basePage{Title: title, Users: s.users.users}
	b.Nav.Home = s.paths.index
	b.Nav.MyApps = s.paths.myApps
	b.Nav.Metadata = s.paths.azureMetadata
	return b
}

// render executes t with data and writes it with status. Nothing is
// written if the template fails.
func (s *Server) render(w http.ResponseWriter, status int, t *template.Template, data any) {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		s.log.Error("cannot render page", zap.String("template", t.Name()), zap.Error(err))
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header(), pageCSP)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderLogin shows the sign-in page of the pending request page.LoginID.
func (s *Server) renderLogin(w http.ResponseWriter, _ *http.Request, page loginPage) {
	page.basePage = s.base("Sign in")
	page.Action = s.paths.login
	s.render(w, http.StatusOK, s.pages.login, page)
}
