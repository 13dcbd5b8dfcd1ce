package devidp

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
)

// Validity periods of what the IdP issues, as Azure AD sets them.
const (
	// notBeforeSkew is how long before its IssueInstant an assertion's
	// Conditions start.
	notBeforeSkew = 5 * time.Minute
	// assertionLifetime is how long after its IssueInstant an assertion's
	// Conditions end.
	assertionLifetime = 70 * time.Minute
	// confirmationLifetime is how long after its IssueInstant the bearer
	// subject confirmation may be used.
	confirmationLifetime = 5 * time.Minute
)

// bearerMethod is the subject confirmation method of Web Browser SSO.
const bearerMethod = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

// authnContextPasswordProtectedTransport is the authentication context class
// of a password sent over TLS, which Azure asserts for a password sign-in.
const authnContextPasswordProtectedTransport = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport" //nolint:gosec // a URI, not a credential

// ctxKey is the type of the keys of the values the IdP puts in request
// contexts.
type ctxKey int

const (
	// userKey holds the *User whose credentials the handler has checked.
	userKey ctxKey = iota
	// stateKey holds the *requestState of an SSO or IdP-initiated request.
	stateKey
)

// requestState carries what the crewjam callbacks learn about a request back
// to the handler that called crewjam.
type requestState struct {
	// entityID is the service provider entity ID crewjam last asked for.
	entityID string
	// retryACS is set by onError when the request names an assertion
	// consumer service that the SP's metadata does not list, and the
	// handler may fetch the metadata again and retry.
	retryACS bool
	// mayRetry says whether the handler would retry.
	mayRetry bool
}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey).(*requestState)
	return st
}

// samlGlue implements the crewjam IdentityProvider callbacks for a Server.
type samlGlue struct{ s *Server }

var (
	_ saml.ServiceProviderProvider = samlGlue{}
	_ saml.SessionProvider         = samlGlue{}
	_ saml.AssertionMaker          = samlGlue{}
	_ saml.ResponseWriter          = samlGlue{}
)

// GetServiceProvider implements saml.ServiceProviderProvider: it looks the
// SP up by entity ID in the metadata fetched from the configured URLs.
func (g samlGlue) GetServiceProvider(r *http.Request, entityID string) (*saml.EntityDescriptor, error) {
	if st := stateFrom(r.Context()); st != nil {
		st.entityID = entityID
	}
	return g.s.sps.lookup(r.Context(), entityID)
}

// GetSession implements saml.SessionProvider. The IdP keeps no login
// session: a request carries the user whose credentials the handler has
// checked (IdP-initiated sign-in from My Apps), or the user is asked for
// them with the sign-in page, which holds on to the validated AuthnRequest
// until the form is posted (see Server.handleLogin).
func (g samlGlue) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	s := g.s
	if u, ok := r.Context().Value(userKey).(*User); ok {
		session, err := s.newSession(u)
		if err != nil {
			s.renderError(w, r, http.StatusInternalServerError, err)
			return nil
		}
		return session
	}
	if req.Request.ID == "" {
		// An IdP-initiated request always carries its user.
		s.renderError(w, r, http.StatusInternalServerError, errors.New("idp-initiated request without a user"))
		return nil
	}
	if req.Request.IsPassive != nil && *req.Request.IsPassive {
		// Without a login session the user cannot be signed in
		// without seeing the sign-in page.
		err := s.idp.SendErrorResponse(w, req, &saml.StatusError{
			TopLevel:    saml.StatusResponder,
			SecondLevel: saml.StatusNoPassive,
			Message:     "the user cannot be authenticated passively",
		})
		if err != nil {
			s.renderError(w, r, http.StatusInternalServerError, fmt.Errorf("answer passive request: %w", err))
		}
		return nil
	}
	if req.ACSEndpoint == nil || req.ServiceProviderMetadata == nil {
		s.renderError(w, r, http.StatusInternalServerError, errors.New("authn request was not validated"))
		return nil
	}
	if err := checkACSBinding(req.ACSEndpoint); err != nil {
		// Found out before the user types a password.
		s.renderError(w, r, http.StatusBadRequest, err)
		return nil
	}
	id, err := s.pending.add(req)
	if err != nil {
		s.renderError(w, r, http.StatusInternalServerError, err)
		return nil
	}
	s.renderLogin(w, r, loginPage{LoginID: id, AppID: req.ServiceProviderMetadata.EntityID})
	return nil
}

// newSession returns the crewjam session of a sign-in by u now.
func (s *Server) newSession(u *User) (*saml.Session, error) {
	id, err := newSAMLID(s.rand)
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	return &saml.Session{
		ID:             id,
		CreateTime:     now,
		ExpireTime:     now.Add(assertionLifetime),
		NameID:         u.Email,
		NameIDFormat:   string(saml.EmailAddressNameIDFormat),
		SubjectID:      u.ObjectID,
		Groups:         append([]string(nil), u.Groups...),
		UserName:       u.Email,
		UserEmail:      u.Email,
		UserCommonName: u.DisplayName,
		UserSurname:    u.Surname,
		UserGivenName:  u.GivenName,
	}, nil
}

// MakeAssertion implements saml.AssertionMaker. The assertion has Azure AD's
// shape: an emailAddress NameID, Azure's claim URIs in Azure's order,
// Conditions from 5 minutes before to 70 minutes after issue, and the
// assertion ID as the SessionIndex.
func (g samlGlue) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	s := g.s
	u, ok := s.users.lookup(session.NameID)
	if !ok {
		return fmt.Errorf("make assertion: no user %q", session.NameID)
	}
	if req.ACSEndpoint == nil || req.ServiceProviderMetadata == nil {
		return errors.New("make assertion: the request has no service provider")
	}
	id, err := newSAMLID(s.rand)
	if err != nil {
		return fmt.Errorf("make assertion: %w", err)
	}
	now := s.now().UTC()
	req.Assertion = &saml.Assertion{
		ID:           id,
		IssueInstant: now,
		Version:      "2.0",
		Issuer:       saml.Issuer{Value: s.entityID},
		Subject: &saml.Subject{
			NameID: &saml.NameID{Format: string(saml.EmailAddressNameIDFormat), Value: u.Email},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: bearerMethod,
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: req.Request.ID,
					NotOnOrAfter: now.Add(confirmationLifetime),
					Recipient:    req.ACSEndpoint.Location,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore:    now.Add(-notBeforeSkew),
			NotOnOrAfter: now.Add(assertionLifetime),
			AudienceRestrictions: []saml.AudienceRestriction{{
				Audience: saml.Audience{Value: req.ServiceProviderMetadata.EntityID},
			}},
		},
		AttributeStatements: []saml.AttributeStatement{{
			Attributes: claims(u, s.tenantID, s.entityID),
		}},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: session.CreateTime,
			SessionIndex: id,
			AuthnContext: saml.AuthnContext{
				AuthnContextClassRef: &saml.AuthnContextClassRef{Value: authnContextPasswordProtectedTransport},
			},
		}},
	}
	return nil
}

// WriteResponse implements saml.ResponseWriter. Like Azure by default, it
// signs the assertion only and leaves the Response unsigned. For the SPs
// of Config.EncryptFor it encrypts the assertion, as Azure does once an
// admin has uploaded the SP's certificate under Token encryption. An error Response that crewjam has already
// made is sent as it is. Only the HTTP-POST binding is supported, as by
// Azure.
func (g samlGlue) WriteResponse(w http.ResponseWriter, req *saml.IdpAuthnRequest) error {
	s := g.s
	if err := checkACSBinding(req.ACSEndpoint); err != nil {
		return err
	}
	if req.ResponseEl == nil {
		el, err := s.makeResponse(req)
		if err != nil {
			return err
		}
		req.ResponseEl = el
	}
	setPageHeaders(w.Header(), s.postFormCSP)
	return req.WriteResponse(w)
}

// checkACSBinding returns an error matching saml.ErrUnsupported unless the
// assertion consumer service has the HTTP-POST binding, the only one Azure
// sends Responses with.
func checkACSBinding(acs *saml.IndexedEndpoint) error {
	switch {
	case acs == nil:
		return errors.New("no assertion consumer service")
	case acs.Binding != saml.HTTPPostBinding:
		return fmt.Errorf("assertion consumer service %s has binding %s, not HTTP-POST: %w", acs.Location, acs.Binding, saml.ErrUnsupported)
	}
	return nil
}

// makeResponse signs req.Assertion and returns the (unsigned) Response
// that carries it.
func (s *Server) makeResponse(req *saml.IdpAuthnRequest) (*etree.Element, error) {
	if req.Assertion == nil || req.ACSEndpoint == nil {
		return nil, errors.New("make response: no assertion")
	}
	unsigned, err := req.Assertion.CanonicalElement()
	if err != nil {
		return nil, fmt.Errorf("make response: %w", err)
	}
	signed, err := s.signer.SignEnveloped(unsigned)
	if err != nil {
		return nil, fmt.Errorf("sign assertion: %w", err)
	}
	// Put the signature where the schema wants it, after the Issuer; the
	// enveloped-signature transform makes its place irrelevant to the
	// digest.
	children := signed.ChildElements()
	req.Assertion.Signature = children[len(children)-1]
	assertionEl, err := req.Assertion.CanonicalElement()
	if err != nil {
		return nil, fmt.Errorf("make response: %w", err)
	}
	if req.ServiceProviderMetadata != nil && s.encrypt[req.ServiceProviderMetadata.EntityID] {
		cert := spEncryptionCert(req.SPSSODescriptor)
		if cert == nil {
			return nil, fmt.Errorf("token encryption is on for %s, but its metadata offers no RSA encryption certificate", req.ServiceProviderMetadata.EntityID)
		}
		data, err := azureEncrypter().Encrypt(cert, []byte(canonicalString(assertionEl)), nil)
		if err != nil {
			return nil, fmt.Errorf("encrypt assertion: %w", err)
		}
		data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
		encrypted := etree.NewElement("EncryptedAssertion")
		encrypted.CreateAttr("xmlns", "urn:oasis:names:tc:SAML:2.0:assertion")
		encrypted.AddChild(data)
		assertionEl = encrypted
	}
	req.AssertionEl = assertionEl

	id, err := newSAMLID(s.rand)
	if err != nil {
		return nil, fmt.Errorf("make response: %w", err)
	}
	resp := &saml.Response{
		ID:           id,
		InResponseTo: req.Request.ID,
		Version:      "2.0",
		IssueInstant: req.Assertion.IssueInstant,
		Destination:  req.ACSEndpoint.Location,
		Issuer:       &saml.Issuer{Value: s.entityID},
		Status:       saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	el := resp.Element()
	el.AddChild(assertionEl)
	return el, nil
}

// buildMetadata returns the IdP metadata in Azure's shape, signed like
// Azure's: one signing key and no encryption key, no validUntil, and an
// enveloped signature as the first child of the EntityDescriptor.
func (s *Server) buildMetadata() ([]byte, error) {
	ed := s.idp.Metadata()
	ed.ValidUntil = time.Time{}
	ed.CacheDuration = 0
	id, err := newSAMLID(s.rand)
	if err != nil {
		return nil, fmt.Errorf("build metadata: %w", err)
	}
	ed.ID = id
	for i := range ed.IDPSSODescriptors {
		d := &ed.IDPSSODescriptors[i]
		var kds []saml.KeyDescriptor
		for _, kd := range d.KeyDescriptors {
			if kd.Use == "signing" {
				kds = append(kds, kd)
			}
		}
		d.KeyDescriptors = kds
	}

	buf, err := xml.Marshal(ed)
	if err != nil {
		return nil, fmt.Errorf("build metadata: %w", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(buf); err != nil {
		return nil, fmt.Errorf("build metadata: %w", err)
	}
	root := doc.Root()
	sig, err := s.signer.ConstructSignature(root, true)
	if err != nil {
		return nil, fmt.Errorf("sign metadata: %w", err)
	}
	root.InsertChildAt(0, sig)
	out, err := doc.WriteToBytes()
	if err != nil {
		return nil, fmt.Errorf("build metadata: %w", err)
	}
	return append([]byte(xml.Header), out...), nil
}

// spEncryptionCert returns the first encryption certificate (RSA) the SP's
// metadata offers, or nil.
func spEncryptionCert(sp *saml.SPSSODescriptor) *x509.Certificate {
	if sp == nil {
		return nil
	}
	for _, kd := range sp.KeyDescriptors {
		if kd.Use != "encryption" {
			continue
		}
		for _, c := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
			if err != nil {
				continue
			}
			if cert, err := x509.ParseCertificate(der); err == nil {
				if _, ok := cert.PublicKey.(*rsa.PublicKey); ok {
					return cert
				}
			}
		}
	}
	return nil
}

// canonicalString writes el as an XML document without declaration.
func canonicalString(el *etree.Element) string {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	out, _ := doc.WriteToString()
	return out
}
