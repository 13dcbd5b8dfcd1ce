package caddymodule

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strings"

	samlsp "github.com/engage-sso/engage-sso/caddymodule/saml"
)

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.ParseFS(templateFS, "templates/*.html"))

// loginPage is the data of the email (home-realm discovery) page.
type loginPage struct {
	ReturnTo string
	Email    string
	Error    string
	Company  string
	Choices  []loginChoice
}

type loginChoice struct {
	Label string
	URL   string
}

// errorPage is the data of every error page. Only fixed texts chosen by
// Reason reach the browser, never an error's detail.
type errorPage struct {
	Reason        string
	CorrelationID string
	Provider      string
	Company       string

	Title   string
	Message string
	Hint    string
	Status  int
}

type pageText struct{ title, message, hint string }

// reasonTexts are the pages for refusals that are not SAML verification
// failures (those take their text from samlsp.Reason.UserMessage).
var reasonTexts = map[string]pageText{
	"domain_not_authorised": {"Your email domain is not allowed",
		"Your organisation has not authorised sign-in to Engage for your email address's domain.",
		"If you think this is wrong, ask an Engage account holder in your company to add your domain under Authorised domains."},
	"no_role": {"No Engage role is assigned to you",
		"You signed in successfully, but none of your groups or app roles is mapped to an Engage role (Agent, Supervisor or Account Holder).",
		"Ask your administrator to add you to a group (or app role) that is mapped to an Engage role, then sign in again."},
	"group_overage": {"Too many groups to read your role",
		"Azure AD sent a link instead of your groups because you are a member of more than 150 groups.",
		"Administrator: in the Enterprise App's Attributes & Claims, set the groups claim to emit only \"Groups assigned to the application\", and assign the role groups to the app; or give this provider Microsoft Graph credentials so that the groups are read from Graph."},
	"graph_unavailable": {"Your groups could not be read",
		"You are a member of more than 150 groups, so your role is read from Microsoft Graph, which did not answer in time.",
		"Try again in a few minutes. If it keeps failing, give your administrator the reference below."},
	"graph_denied": {"Your groups could not be read",
		"You are a member of more than 150 groups, so your role is read from Microsoft Graph, which refused this site's application credentials.",
		"Administrator: check the provider's Graph client id and secret (it may have expired), and that the app registration has the Microsoft Graph application permission GroupMember.Read.All (or User.Read.All) with admin consent."},
	"graph_error": {"Your groups could not be read",
		"You are a member of more than 150 groups, so your role is read from Microsoft Graph, and that failed.",
		"Give your administrator the reference below: the log says what Graph answered."},
	"no_email": {"No email address received",
		"The identity provider did not send an email address for your account.",
		"Administrator: add the emailaddress claim (user.mail) in the Enterprise App's Attributes & Claims."},
	"invalid_email": {"No valid email address received",
		"The identity provider did not send a usable email address for your account.",
		"Administrator: check that the emailaddress claim (user.mail) or the NameID carries the user's email address."},
	"no_certificate": {"No certificate for this provider",
		"This provider has no certificate: assertion encryption is off and sign-in requests are not signed.",
		"Administrator: set encryption (allowed or required) or sign_requests for the provider to get a certificate to upload to Azure."},
	"idp_shared": {"Sign-in provider conflict",
		"This provider's identity provider is also configured for another company.",
		"Administrator: an Azure tenant belongs to one company; remove the provider from the company it does not belong to."},
	"provider_misconfigured": {"Sign-in is misconfigured",
		"This sign-in provider is not configured correctly.",
		"Administrator: check the provider's role mapping mode."},
	"no_account": {"You do not have an Engage account yet",
		"You signed in successfully, but there is no Engage account for you, and this organisation does not create accounts automatically.",
		"Ask an account holder or a supervisor in your company to create your account, or your administrator to enable SCIM provisioning."},
	"account_disabled": {"Your account is disabled",
		"Your Engage account has been deactivated.",
		"If you think this is wrong, ask an account holder in your company to reactivate it."},
	"email_taken": {"Your email address is used by another account",
		"An Engage account with your email address belongs to a different Azure AD user.",
		"Ask an account holder in your company to check the account with your email address."},
	"account_setup_failed": {"Your account could not be set up",
		"Engage refused to create or update your account.",
		"Try again. If it keeps failing, give your administrator the reference below."},
	"directory_unavailable": {"Sign-in temporarily unavailable",
		"Engage's account service cannot be reached right now. Nothing was let through.",
		"Try again in a minute."},
	"browser_mismatch": {"Sign-in started in another browser",
		"This sign-in was started in a different browser or the sign-in cookie was blocked.",
		"Start again from the same browser window."},
	"unknown_provider": {"Unknown sign-in link",
		"There is no sign-in provider at this address.",
		"Check the link, or start from the sign-in page."},
	"provider_unavailable": {"Sign-in temporarily unavailable",
		"We cannot reach your organisation's identity provider settings right now.",
		"Try again in a minute. If it persists, tell your administrator."},
	"store_unavailable": {"Sign-in temporarily unavailable",
		"The sign-in service cannot reach its session store right now. Nothing was let through.",
		"Try again in a minute."},
	"not_found":          {"Page not found", "There is nothing at this address.", ""},
	"method_not_allowed": {"Method not allowed", "This address does not accept that kind of request.", ""},
	"bad_form":           {"Invalid request", "The form could not be read.", "Go back and try again."},
}

func (p *errorPage) fill(status int) {
	p.Status = status
	if t, ok := reasonTexts[p.Reason]; ok {
		p.Title, p.Message, p.Hint = t.title, t.message, t.hint
		return
	}
	if msg := samlsp.Reason(p.Reason).UserMessage(); msg != "" {
		p.Title = "Sign-in failed"
		p.Message = msg
		p.Hint = "Try signing in again. If it keeps failing, give your administrator the reference below."
		return
	}
	p.Title = http.StatusText(status)
	p.Message = "Something went wrong while signing you in."
	p.Hint = "Try again. If it keeps failing, give your administrator the reference below."
}

// setPageHeaders locks pages down: no framing, no scripts, no referrer.
// There is no form-action directive: browsers apply it to the redirect that
// follows the login form, which ends at the IdP's origin.
func setPageHeaders(h http.Header) {
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

func (h *Handler) renderError(w http.ResponseWriter, r *http.Request, status int, p errorPage) {
	p.fill(status)
	// Browsers get a page; API clients (asking for JSON, or sending a
	// non-GET request to the application) get JSON.
	apiCall := r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.HasPrefix(r.URL.Path, ssoPrefix)
	if wantsJSON(r) || apiCall {
		writeJSON(w, status, map[string]string{
			"error":          p.Reason,
			"message":        p.Message,
			"correlation_id": p.CorrelationID,
		})
		return
	}
	h.render(w, status, "error.html", p)
}

func (h *Handler) renderLogin(w http.ResponseWriter, status int, p loginPage) {
	h.render(w, status, "login.html", p)
}

func (h *Handler) renderSignedOut(w http.ResponseWriter) {
	h.render(w, http.StatusOK, "signedout.html", nil)
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		h.logger.Error("rendering page " + name + ": " + err.Error())
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
