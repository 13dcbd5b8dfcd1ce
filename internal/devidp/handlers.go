package devidp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/crewjam/saml"
	"go.uber.org/zap"
)

// maxFormSize bounds the body of the forms the IdP reads: AuthnRequests
// with the HTTP-POST binding and its own sign-in forms.
const maxFormSize = 256 << 10

var (
	// errSignInExpired is reported when a sign-in form is posted whose
	// request has expired or was already answered.
	errSignInExpired = errors.New("sign-in request expired or already used")
	// errCrossOrigin is reported when credentials are posted from a page
	// of another origin (login CSRF).
	errCrossOrigin = errors.New("cross-origin sign-in form")
	// errNotFound is reported for a path the IdP does not serve.
	errNotFound = errors.New("not found")
)

// handleIndex serves the page that says what this IdP is.
func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	s.render(w, http.StatusOK, s.pages.index, indexPage{
		basePage:         s.base("Local development IdP — not Azure"),
		EntityID:         s.entityID,
		TenantID:         s.tenantID,
		MetadataURL:      s.MetadataURL(),
		ShortMetadataURL: s.absURL(s.paths.metadata),
		SSOURL:           s.SSOURL(),
		MyAppsURL:        s.MyAppsURL(),
		CertSubject:      s.cert.Subject.String(),
		CertThumbprint:   thumbprint(s.cert),
		CertNotAfter:     s.cert.NotAfter,
		ServiceProviders: s.sps.snapshot(),
	})
}

// handleMetadata serves the federation metadata. Azure's appid query
// parameter, like any other, is ignored.
func (s *Server) handleMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(s.metadata)
}

// handleSSO serves the SAML endpoint. crewjam validates the AuthnRequest
// and calls GetSession, which shows the sign-in page. When the request
// names an assertion consumer service that the SP's metadata does not
// list, the metadata is fetched again and the request retried once, as if
// the Azure admin had just added the new Reply URL.
func (s *Server) handleSSO(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	}
	st := &requestState{mayRetry: true}
	r = r.WithContext(context.WithValue(r.Context(), stateKey, st))
	s.idp.ServeSSO(w, r)
	if !st.retryACS {
		return
	}
	st.retryACS, st.mayRetry = false, false
	s.sps.refresh(r.Context(), st.entityID)
	s.idp.ServeSSO(w, r)
}

// handleLogin checks the credentials posted with a sign-in page and, if
// they are right, answers the AuthnRequest that page was shown for.
// Wrong credentials show the page again, with an error.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if err := s.readCredentialsForm(w, r); err != nil {
		s.renderError(w, r, statusOf(err), err)
		return
	}
	id := r.PostForm.Get("login")
	pl, ok := s.pending.take(id)
	if !ok {
		s.renderError(w, r, http.StatusBadRequest, errSignInExpired)
		return
	}
	req := pl.req
	email := r.PostForm.Get("email")
	u, ok := s.users.authenticate(email, r.PostForm.Get("password"))
	if !ok {
		s.log.Info("sign-in failed: wrong email or password",
			zap.String("email", email), zap.String("sp", req.ServiceProviderMetadata.EntityID))
		s.pending.put(id, pl)
		s.renderLogin(w, r, loginPage{
			LoginID: id,
			AppID:   req.ServiceProviderMetadata.EntityID,
			Email:   email,
			Error:   "Your email or password is incorrect. The demo users and their passwords are listed below.",
		})
		return
	}
	s.log.Info("signed in", zap.String("email", u.Email),
		zap.String("sp", req.ServiceProviderMetadata.EntityID), zap.String("request_id", req.Request.ID))

	req.HTTPRequest = r
	req.Now = s.now()
	session, err := s.newSession(u)
	if err != nil {
		s.renderError(w, r, http.StatusInternalServerError, err)
		return
	}
	s.completeSSO(w, r, req, session)
}

// completeSSO answers req for session, as crewjam's ServeSSO does once
// its SessionProvider has returned a session.
func (s *Server) completeSSO(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest, session *saml.Session) {
	glue := samlGlue{s: s}
	err := glue.MakeAssertion(req, session)
	if err == nil {
		err = req.CheckRequestSubject()
	}
	var statusErr *saml.StatusError
	if errors.As(err, &statusErr) {
		if err := s.idp.SendErrorResponse(w, req, statusErr); err != nil {
			s.renderError(w, r, http.StatusInternalServerError, err)
		}
		return
	}
	if err != nil {
		s.renderError(w, r, http.StatusInternalServerError, err)
		return
	}
	if err := glue.WriteResponse(w, req); err != nil {
		s.renderError(w, r, http.StatusInternalServerError, fmt.Errorf("write response: %w", err))
	}
}

// handleMyApps shows the My Apps page: a sign-in form with a button for
// each service provider.
func (s *Server) handleMyApps(w http.ResponseWriter, r *http.Request) {
	s.renderMyApps(w, r, myAppsPage{})
}

func (s *Server) renderMyApps(w http.ResponseWriter, r *http.Request, page myAppsPage) {
	page.basePage = s.base("My Apps")
	page.Action = s.paths.myApps
	page.Apps = s.sps.list(r.Context())
	s.render(w, http.StatusOK, s.pages.myApps, page)
}

// handleMyAppsSignIn checks the credentials posted from My Apps and starts
// an IdP-initiated sign-in to the chosen service provider: a Response that
// answers no request.
func (s *Server) handleMyAppsSignIn(w http.ResponseWriter, r *http.Request) {
	if err := s.readCredentialsForm(w, r); err != nil {
		s.renderError(w, r, statusOf(err), err)
		return
	}
	email := r.PostForm.Get("email")
	relayState := r.PostForm.Get("RelayState")
	entityID := r.PostForm.Get("sp")
	u, ok := s.users.authenticate(email, r.PostForm.Get("password"))
	switch {
	case !ok:
		s.log.Info("sign-in failed: wrong email or password", zap.String("email", email), zap.String("sp", entityID))
		s.renderMyApps(w, r, myAppsPage{Email: email, RelayState: relayState,
			Error: "Your email or password is incorrect. The demo users and their passwords are listed below."})
		return
	case entityID == "":
		s.renderMyApps(w, r, myAppsPage{Email: email, RelayState: relayState,
			Error: "Choose an application to sign in to."})
		return
	}
	s.log.Info("signed in (IdP-initiated)", zap.String("email", u.Email), zap.String("sp", entityID))
	st := &requestState{}
	ctx := context.WithValue(r.Context(), stateKey, st)
	ctx = context.WithValue(ctx, userKey, u)
	s.idp.ServeIDPInitiated(w, r.WithContext(ctx), entityID, relayState)
}

// readCredentialsForm refuses a form posted from another origin, which
// could sign the browser's user in as someone else (login CSRF), and
// parses the form.
func (s *Server) readCredentialsForm(w http.ResponseWriter, r *http.Request) error {
	if err := s.csrf.Check(r); err != nil {
		return fmt.Errorf("%w: %w", errCrossOrigin, err)
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("parse form: %w", err)
	}
	return nil
}

// statusOf returns the HTTP status for an error of readCredentialsForm.
func statusOf(err error) int {
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, errCrossOrigin):
		return http.StatusForbidden
	case errors.As(err, &maxErr):
		return http.StatusRequestEntityTooLarge
	default:
		return http.StatusBadRequest
	}
}

// handleNotFound answers the paths the IdP does not serve.
func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.renderError(w, r, http.StatusNotFound, errNotFound)
}

// onError is crewjam's IdentityProvider.OnError. A request naming an
// assertion consumer service the SP's metadata does not list is left for
// handleSSO to retry once; other errors get an error page.
func (s *Server) onError(w http.ResponseWriter, r *http.Request, status int, err error) {
	if st := stateFrom(r.Context()); st != nil && st.mayRetry && st.entityID != "" &&
		errors.Is(err, saml.ErrUnknownAssertionConsumerService) {
		st.retryACS = true
		return
	}
	s.renderError(w, r, status, err)
}

// renderError logs err under a new correlation id and shows an error page
// that explains, without the error's details, what went wrong.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, err error) {
	page := errorPage{Status: status, CorrelationID: s.correlationID()}
	if st := stateFrom(r.Context()); st != nil {
		page.EntityID = st.entityID
	}
	describeError(&page, err)
	if page.ShowSPs {
		page.SPs = s.sps.snapshot()
	}
	page.basePage = s.base(page.Heading)

	fields := []zap.Field{
		zap.String("correlation_id", page.CorrelationID),
		zap.Int("status", status),
		zap.String("method", r.Method),
		zap.String("path", r.URL.Path),
		zap.Error(err),
	}
	if page.EntityID != "" {
		fields = append(fields, zap.String("sp", page.EntityID))
	}
	if status >= http.StatusInternalServerError {
		s.log.Error("request failed", fields...)
	} else {
		s.log.Info("request refused", fields...)
	}
	s.render(w, status, s.pages.errorPage, page)
}

// describeError sets the heading and message of page for err.
func describeError(page *errorPage, err error) {
	switch {
	case errors.Is(err, errSignInExpired):
		page.Heading = "This sign-in has expired"
		page.Message = "The sign-in page was open for more than 15 minutes, or it was already used. Go back to the application and sign in again."
	case errors.Is(err, errCrossOrigin):
		page.Heading = "Sign-in refused"
		page.Message = "The sign-in form was posted from another site. Open the sign-in page of this IdP and try again."
	case errors.Is(err, errNotFound):
		page.Heading = "Page not found"
		page.Message = "This identity provider has no page at this address."
	case errors.Is(err, saml.ErrUnknownServiceProvider):
		page.Heading = "Application not found"
		page.Message = "No application configured in this IdP has the identifier (entity ID) of the request. The IdP knows the service providers whose metadata URLs it was given (-sp flag, Config.ServiceProviders)."
		page.AzureCode = "AADSTS700016"
		page.ShowSPs = true
	case errors.Is(err, saml.ErrUnknownAssertionConsumerService):
		page.Heading = "Reply URL mismatch"
		page.Message = "The reply URL (assertion consumer service) in the request is not in the application's metadata, even after fetching it again."
		page.AzureCode = "AADSTS50011"
		page.ShowSPs = true
	case errors.Is(err, saml.ErrInvalidSignature):
		page.Heading = "Invalid request signature"
		page.Message = "The signature of the sign-in request is missing or does not verify with the signing certificate in the application's metadata."
	case errors.Is(err, saml.ErrExpired), errors.Is(err, saml.ErrNotYetValid):
		page.Heading = "Request expired"
		page.Message = "The sign-in request is too old or dated in the future. Check the clocks of the application and the IdP, then sign in again."
	case errors.Is(err, saml.ErrDestinationMismatch):
		page.Heading = "Wrong destination"
		page.Message = "The sign-in request was addressed to another URL than this IdP's SAML endpoint."
	case errors.Is(err, saml.ErrUnsupported):
		page.Heading = "Unsupported request"
		page.Message = "The sign-in request asks for something this IdP does not support, such as a response binding other than HTTP-POST."
	case errors.Is(err, saml.ErrMalformedMessage), errors.Is(err, saml.ErrMissingElement):
		page.Heading = "Invalid request"
		page.Message = "The SAML request is missing or malformed."
	case page.Status < http.StatusInternalServerError:
		page.Heading = "Invalid request"
		page.Message = "The identity provider cannot handle this request."
	default:
		page.Heading = "Sign-in failed"
		page.Message = "The identity provider could not complete the request."
	}
}

// correlationID returns a random id that ties an error page to its log line.
func (s *Server) correlationID() string {
	b := make([]byte, 8)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "unavailable"
	}
	return hex.EncodeToString(b)
}
