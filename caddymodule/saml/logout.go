package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	crewjam "github.com/crewjam/saml"
)

// Status codes of the LogoutResponses an SP sends and receives
// (saml-core §3.2.2.2).
const (
	// StatusSuccess: the request succeeded.
	StatusSuccess = statusSuccess
	// StatusRequester: the request could not be performed because of an
	// error on the part of the requester.
	StatusRequester = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	// StatusResponder: the request could not be performed because of an
	// error on the part of the responder, such as an unreachable session
	// store.
	StatusResponder = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	// StatusPartialLogout is a second-level status: the principal was
	// signed out of some session participants but not all.
	StatusPartialLogout = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
)

// MaxLogoutBytes is the largest logout message (LogoutRequest or
// LogoutResponse) accepted, once decoded and inflated. Azure's are under
// 2 KiB. A redirect whose message inflates to more is refused as soon as
// the limit is passed, so a deflate bomb costs no more than this.
const MaxLogoutBytes = 64 << 10

// maxLogoutQuery bounds the raw query string of an HTTP-Redirect logout
// message: the deflated message, base64 then percent-encoded, and the
// signature parameters.
const maxLogoutQuery = 4 * MaxLogoutBytes

// logoutReplayPrefix is put before a LogoutRequest ID in the replay cache,
// so that it cannot collide with an assertion ID (an xs:ID has no colon).
const logoutReplayPrefix = "LogoutRequest:"

// entityNameIDFormat is the Format of the Issuer of the messages the SP
// sends.
const entityNameIDFormat = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity"

// The HTTP-Redirect binding's query parameters.
const (
	paramRequest    = "SAMLRequest"
	paramResponse   = "SAMLResponse"
	paramRelayState = "RelayState"
	paramSigAlg     = "SigAlg"
	paramSignature  = "Signature"
)

// ErrNoSingleLogout reports that single logout is not available: the SP
// has no SLO URL (Config.SLOURL), or the IdP metadata has no
// SingleLogoutService with the HTTP-Redirect binding.
var ErrNoSingleLogout = errors.New("saml: single logout is not configured")

// LogoutSubject is the session at the IdP that an SP-initiated
// LogoutRequest asks to end, as the assertion named it.
type LogoutSubject struct {
	// NameID is the assertion's NameID. Required.
	NameID string
	// NameIDFormat is the assertion's NameID Format, or "".
	NameIDFormat string
	// SessionIndex is the SessionIndex of the assertion's AuthnStatement,
	// or "".
	SessionIndex string
}

// LogoutRequest is a verified LogoutRequest from the IdP (IdP-initiated
// single logout): the principal whose sessions must end.
type LogoutRequest struct {
	// ID is the request's ID, which the LogoutResponse answers.
	ID string
	// NameID and NameIDFormat identify the principal, as in the assertion
	// the IdP issued at sign-in.
	NameID       string
	NameIDFormat string
	// SessionIndexes name the sessions to end; none means every session of
	// the principal.
	SessionIndexes []string
	// IssueInstant is when the IdP issued the request.
	IssueInstant time.Time
}

// LogoutResponse is a verified, successful LogoutResponse from the IdP.
type LogoutResponse struct {
	// ID is the response's ID.
	ID string
	// InResponseTo is the ID of the LogoutRequest it answers.
	InResponseTo string
	// Partial reports the second-level status PartialLogout: the IdP ended
	// its own session but could not sign the user out of every other
	// application.
	Partial bool
}

// SingleLogout reports whether single logout is available: the SP has an
// SLO URL and the IdP a SingleLogoutService for the HTTP-Redirect binding.
func (sp *SP) SingleLogout() bool { return sp.sloURL != "" && sp.idpSLOURL != "" }

// SLOURL returns the SP's single logout service URL, or "".
func (sp *SP) SLOURL() string { return sp.sloURL }

// LogoutRequestURL builds a LogoutRequest for the IdP's HTTP-Redirect
// SingleLogoutService (SP-initiated single logout) and returns the URL to
// redirect the browser to, with relayState as its RelayState, and the
// request's ID. The caller keeps the ID server-side and passes it to
// ParseLogoutResponse to check the answer.
//
// The request names s exactly as the assertion did: NameID value and
// Format, no qualifiers, and the SessionIndex if there is one. Its Issuer
// is the SP's entityID and its Destination the IdP's SLO URL. It is not
// signed, since the SP has no key (Azure does not require signed logout
// requests unless the application has a verification certificate).
// relayState must be at most 80 bytes. It returns ErrNoSingleLogout when
// SingleLogout() is false.
func (sp *SP) LogoutRequestURL(s LogoutSubject, relayState string) (redirect, requestID string, err error) {
	if !sp.SingleLogout() {
		return "", "", ErrNoSingleLogout
	}
	if strings.TrimSpace(s.NameID) == "" {
		return "", "", errors.New("saml: building LogoutRequest: no NameID")
	}
	req, err := sp.sp.MakeLogoutRequest(sp.idpSLOURL, s.NameID, crewjam.WithSessionIndex(s.SessionIndex))
	if err != nil {
		return "", "", fmt.Errorf("saml: building LogoutRequest: %w", err)
	}
	// As for AuthnRequests, the ID comes from sp.rand; the request is not
	// signed, so it can be replaced.
	if req.ID, err = newRequestID(sp.rand); err != nil {
		return "", "", fmt.Errorf("saml: building LogoutRequest: %w", err)
	}
	// crewjam fills in the Format from the SP's AuthnRequest policy and
	// adds qualifiers; the IdP matches the NameID it issued.
	req.NameID.Format = s.NameIDFormat
	req.NameID.NameQualifier, req.NameID.SPNameQualifier = "", ""
	u, err := sp.sp.RedirectLogoutRequestURL(req, relayState)
	if err != nil {
		return "", "", fmt.Errorf("saml: building LogoutRequest redirect: %w", err)
	}
	return u.String(), req.ID, nil
}

// ParseLogoutResponse verifies the LogoutResponse carried by rawQuery, the
// raw query string of a request to the SLO URL with the HTTP-Redirect
// binding, which must answer the LogoutRequest requestID (from
// LogoutRequestURL; "" if none is pending, which refuses every response).
//
// It checks the size (MaxLogoutBytes, also for the inflated message), base64
// and deflate encoding, and XML well-formedness, refusing any DOCTYPE; then,
// with crewjam/saml, the signature (a query string signature, SigAlg and
// Signature, or an enveloped XML signature: an unsigned response is
// refused), Destination = the SLO URL, Issuer = the IdP's entityID,
// IssueInstant, and InResponseTo = requestID.
//
// A verified response whose status is not Success is refused with
// ReasonIdPStatus and a *StatusError detail. Every refusal is an *Error.
func (sp *SP) ParseLogoutResponse(rawQuery, requestID string) (*LogoutResponse, error) {
	if !sp.SingleLogout() {
		return nil, &Error{Reason: ReasonDestination, Err: ErrNoSingleLogout}
	}
	raw, querySigned, rerr := readRedirect(rawQuery, paramResponse)
	if rerr != nil {
		return nil, rerr
	}
	info, rerr := inspectLogout(raw, "LogoutResponse")
	if rerr != nil {
		return nil, rerr
	}
	if !querySigned && !info.signed {
		return nil, refuse(ReasonSignature, "the LogoutResponse is not signed")
	}
	resp, err := sp.sp.ParseLogoutResponse(redirectRequest(rawQuery), []string{requestID})
	if err != nil {
		e := classifyLogout(err)
		if e.Reason == ReasonIdPStatus {
			// crewjam checks the status before InResponseTo, but after
			// the signature and every other field: what was read from the
			// same bytes is what the IdP signed.
			if requestID == "" || info.inResponseTo != requestID {
				return nil, refuse(ReasonRequestID, "LogoutResponse answers %q, not the pending LogoutRequest %q", info.inResponseTo, requestID)
			}
			st := info.status
			return nil, &Error{Reason: ReasonIdPStatus, Err: &st}
		}
		return nil, e
	}
	out := &LogoutResponse{ID: resp.ID, InResponseTo: resp.InResponseTo}
	if sub := resp.Status.StatusCode.StatusCode; sub != nil && sub.Value == StatusPartialLogout {
		out.Partial = true
	}
	return out, nil
}

// ParseRedirectLogoutRequest verifies the LogoutRequest carried by
// rawQuery, the raw query string of a request to the SLO URL with the
// HTTP-Redirect binding (IdP-initiated single logout).
//
// It checks the size, encoding and XML as ParseLogoutResponse does, then
// requires a signature by the IdP (a query string signature, as Azure
// sends, or an enveloped XML signature) and checks, with crewjam/saml,
// Destination = the SLO URL, Issuer = the IdP's entityID, IssueInstant (at
// most crewjam's MaxIssueDelay old, and not in the future beyond
// MaxClockSkew), NotOnOrAfter (allowing MaxClockSkew), and that the
// principal is a NameID. Last, it records the request's ID in the replay
// cache with ctx and refuses one it has seen (ReasonReplay).
//
// Every refusal is an *Error. When the replay cache fails (ReasonInternal)
// the request, which verified, is returned as well, so that the caller can
// answer the IdP with StatusResponder.
func (sp *SP) ParseRedirectLogoutRequest(ctx context.Context, rawQuery string) (*LogoutRequest, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: err}
	}
	if !sp.SingleLogout() {
		return nil, &Error{Reason: ReasonDestination, Err: ErrNoSingleLogout}
	}
	raw, querySigned, rerr := readRedirect(rawQuery, paramRequest)
	if rerr != nil {
		return nil, rerr
	}
	info, rerr := inspectLogout(raw, "LogoutRequest")
	if rerr != nil {
		return nil, rerr
	}
	if !querySigned && !info.signed {
		return nil, refuse(ReasonSignature, "the LogoutRequest is not signed")
	}
	req, err := sp.sp.ValidateLogoutRequest(redirectRequest(rawQuery))
	return sp.acceptLogoutRequest(ctx, req, err)
}

// ParsePostLogoutRequest is ParseRedirectLogoutRequest for the HTTP-POST
// binding: samlRequest is the base64 SAMLRequest form value, which must
// carry an enveloped XML signature by the IdP.
func (sp *SP) ParsePostLogoutRequest(ctx context.Context, samlRequest string) (*LogoutRequest, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Reason: ReasonInternal, Err: err}
	}
	if !sp.SingleLogout() {
		return nil, &Error{Reason: ReasonDestination, Err: ErrNoSingleLogout}
	}
	samlRequest = strings.TrimSpace(samlRequest)
	if samlRequest == "" {
		return nil, refuse(ReasonMalformed, "SAMLRequest is empty")
	}
	if len(samlRequest) > 2*base64.StdEncoding.EncodedLen(MaxLogoutBytes) {
		return nil, refuse(ReasonMalformed, "SAMLRequest is larger than %d bytes", MaxLogoutBytes)
	}
	raw, err := base64.StdEncoding.DecodeString(samlRequest)
	if err != nil {
		return nil, refuse(ReasonMalformed, "SAMLRequest is not valid base64: %w", err)
	}
	if len(raw) > MaxLogoutBytes {
		return nil, refuse(ReasonMalformed, "SAMLRequest is larger than %d bytes (%d)", MaxLogoutBytes, len(raw))
	}
	info, rerr := inspectLogout(raw, "LogoutRequest")
	if rerr != nil {
		return nil, rerr
	}
	if !info.signed {
		return nil, refuse(ReasonSignature, "the LogoutRequest is not signed")
	}
	req, err := sp.sp.ValidateLogoutRequestForm(samlRequest)
	return sp.acceptLogoutRequest(ctx, req, err)
}

// acceptLogoutRequest finishes ParseRedirectLogoutRequest and
// ParsePostLogoutRequest: it classifies crewjam's verdict and checks for a
// replay.
func (sp *SP) acceptLogoutRequest(ctx context.Context, req *crewjam.LogoutRequest, err error) (*LogoutRequest, error) {
	if err != nil {
		return nil, classifyLogout(err)
	}
	if req.NameID == nil || strings.TrimSpace(req.NameID.Value) == "" {
		return nil, refuse(ReasonMalformed, "the LogoutRequest has no NameID")
	}
	out := &LogoutRequest{
		ID:           req.ID,
		NameID:       strings.TrimSpace(req.NameID.Value),
		NameIDFormat: req.NameID.Format,
		IssueInstant: req.IssueInstant,
	}
	for _, si := range req.AllSessionIndexes() {
		if v := strings.TrimSpace(si.Value); v != "" {
			out.SessionIndexes = append(out.SessionIndexes, v)
		}
	}
	// crewjam accepts the request until MaxIssueDelay after IssueInstant
	// at the latest; the record outlives that by the clock skew.
	until := req.IssueInstant.Add(crewjam.MaxIssueDelay + crewjam.MaxClockSkew)
	first, err := sp.replay.MarkAssertionUsed(ctx, logoutReplayPrefix+req.ID, until)
	if err != nil {
		return out, refuse(ReasonInternal, "recording LogoutRequest %q in the replay cache: %w", req.ID, err)
	}
	if !first {
		return nil, refuse(ReasonReplay, "LogoutRequest %q has already been used", req.ID)
	}
	return out, nil
}

// LogoutResponseURL builds a LogoutResponse to the IdP's LogoutRequest
// inResponseTo, with the given top-level status (StatusSuccess,
// StatusResponder, ...), and returns the URL of the IdP's HTTP-Redirect
// SingleLogoutService that carries it, with relayState (the RelayState of
// the request, echoed unchanged) if not empty. Like LogoutRequestURL's, the
// response is not signed. It returns ErrNoSingleLogout when SingleLogout()
// is false.
func (sp *SP) LogoutResponseURL(inResponseTo, relayState, status string) (string, error) {
	if !sp.SingleLogout() {
		return "", ErrNoSingleLogout
	}
	if status == "" {
		return "", errors.New("saml: building LogoutResponse: no status")
	}
	id, err := newRequestID(sp.rand)
	if err != nil {
		return "", fmt.Errorf("saml: building LogoutResponse: %w", err)
	}
	resp := &crewjam.LogoutResponse{
		ID:           id,
		InResponseTo: inResponseTo,
		Version:      "2.0",
		IssueInstant: sp.now().UTC(),
		Destination:  sp.idpSLOURL,
		Issuer:       &crewjam.Issuer{Format: entityNameIDFormat, Value: sp.entityID},
		Status:       crewjam.Status{StatusCode: crewjam.StatusCode{Value: status}},
	}
	encoded, err := deflateEncode(resp.Element())
	if err != nil {
		return "", fmt.Errorf("saml: encoding LogoutResponse: %w", err)
	}
	q := paramResponse + "=" + url.QueryEscape(encoded)
	if relayState != "" {
		q += "&" + paramRelayState + "=" + url.QueryEscape(relayState)
	}
	sep := "?"
	if strings.Contains(sp.idpSLOURL, "?") {
		sep = "&"
	}
	return sp.idpSLOURL + sep + q, nil
}

// readRedirect decodes the message in the param parameter of rawQuery, an
// HTTP-Redirect binding query: base64, then DEFLATE, inflating no more
// than MaxLogoutBytes. querySigned reports SigAlg and Signature parameters
// (which crewjam verifies). A binding parameter given twice, or both
// SAMLRequest and SAMLResponse, is refused, as crewjam does, so that what
// is checked here is what crewjam verifies.
func readRedirect(rawQuery, param string) (raw []byte, querySigned bool, _ *Error) {
	if len(rawQuery) > maxLogoutQuery {
		return nil, false, refuse(ReasonMalformed, "query string is longer than %d bytes", maxLogoutQuery)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, false, refuse(ReasonMalformed, "query string: %w", err)
	}
	for _, k := range []string{paramRequest, paramResponse, paramRelayState, paramSigAlg, paramSignature} {
		if len(q[k]) > 1 {
			return nil, false, refuse(ReasonMalformed, "query parameter %s appears more than once", k)
		}
	}
	if q.Has(paramRequest) && q.Has(paramResponse) {
		return nil, false, refuse(ReasonMalformed, "query has both %s and %s", paramRequest, paramResponse)
	}
	if q.Has(paramSigAlg) != q.Has(paramSignature) {
		return nil, false, refuse(ReasonSignature, "query has only one of %s and %s", paramSigAlg, paramSignature)
	}
	value := strings.TrimSpace(q.Get(param))
	if value == "" {
		return nil, false, refuse(ReasonMalformed, "no %s in the query", param)
	}
	deflated, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, false, refuse(ReasonMalformed, "%s is not valid base64: %w", param, err)
	}
	raw, err = inflate(deflated, MaxLogoutBytes)
	if err != nil {
		return nil, false, refuse(ReasonMalformed, "%s: %w", param, err)
	}
	return raw, q.Has(paramSignature), nil
}

// errTooLarge reports a message that inflates to more than the limit.
var errTooLarge = errors.New("message is too large")

// inflate decompresses the raw DEFLATE data, reading no more than limit+1
// bytes of output.
func inflate(data []byte, limit int) ([]byte, error) {
	fr := flate.NewReader(bytes.NewReader(data))
	defer fr.Close()
	out, err := io.ReadAll(io.LimitReader(fr, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("not valid DEFLATE data: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("%w: it inflates to more than %d bytes", errTooLarge, limit)
	}
	return out, nil
}

// deflateEncode writes el as a document, deflates it and encodes it in
// base64, as the HTTP-Redirect binding carries messages.
func deflateEncode(el *etree.Element) (string, error) {
	var b strings.Builder
	enc := base64.NewEncoder(base64.StdEncoding, &b)
	fw, err := flate.NewWriter(enc, flate.BestCompression)
	if err != nil {
		return "", err
	}
	doc := etree.NewDocument()
	doc.SetRoot(el)
	if _, err := doc.WriteTo(fw); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return b.String(), nil
}

// redirectRequest is the GET request crewjam's logout functions read an
// HTTP-Redirect message from.
func redirectRequest(rawQuery string) *http.Request {
	return &http.Request{Method: http.MethodGet, URL: &url.URL{RawQuery: rawQuery}, Header: http.Header{}}
}

// logoutInfo is what inspectLogout reads from a logout message before it
// is verified. Like responseInfo, it is used only to refuse early and to
// explain refusals.
type logoutInfo struct {
	inResponseTo string
	// signed reports a Signature child of the root element.
	signed bool
	status StatusError
}

// inspectLogout checks that raw is a well-formed XML document without a
// DOCTYPE whose root is the SAML protocol element root (LogoutRequest or
// LogoutResponse), and reads logoutInfo from it.
func inspectLogout(raw []byte, root string) (*logoutInfo, *Error) {
	info := &logoutInfo{}
	statusName := xml.Name{Space: nsProtocol, Local: "Status"}
	err := scanXML(raw, func(path []xml.Name, tok xml.Token) error {
		el := path[len(path)-1]
		if text, ok := tok.(xml.CharData); ok {
			if len(path) == 3 && el == (xml.Name{Space: nsProtocol, Local: "StatusMessage"}) && path[1] == statusName {
				info.status.Message += string(text)
			}
			return nil
		}
		start := tok.(xml.StartElement)
		switch {
		case len(path) == 1:
			if el != (xml.Name{Space: nsProtocol, Local: root}) {
				if el.Space != "" {
					return refuse(ReasonMalformed, "not a SAML %s: root element is <%s> in namespace %q", root, el.Local, el.Space)
				}
				return refuse(ReasonMalformed, "not a SAML %s: root element is <%s>", root, el.Local)
			}
			info.inResponseTo = attr(start, "InResponseTo")
		case len(path) == 2 && el == xml.Name{Space: nsDSig, Local: "Signature"}:
			info.signed = true
		case el == xml.Name{Space: nsProtocol, Local: "StatusCode"} && path[1] == statusName:
			switch len(path) {
			case 3:
				info.status.Code = attr(start, "Value")
			case 4:
				info.status.SubCode = attr(start, "Value")
			}
		}
		return nil
	})
	if rerr := scanRefusal(err, root); rerr != nil {
		return nil, rerr
	}
	info.status.Message = truncate(strings.TrimSpace(info.status.Message), maxStatusMessage)
	return info, nil
}

// classifyLogout turns an error of crewjam's logout functions into an
// *Error, using crewjam's typed errors.
func classifyLogout(err error) *Error {
	var invalid *crewjam.InvalidResponseError
	if errors.As(err, &invalid) && invalid.PrivateErr != nil {
		err = invalid.PrivateErr
	}
	var status crewjam.ErrBadStatus
	if errors.As(err, &status) {
		return &Error{Reason: ReasonIdPStatus, Err: err}
	}
	if r, ok := crewjamReason(err); ok {
		return &Error{Reason: r, Err: err}
	}
	// The message was decoded and checked for well-formedness and a
	// signature before crewjam saw it; what crewjam leaves unclassified
	// after that is the verification of the query string signature (bad
	// SigAlg, bad encoding, wrong key, or a certificate outside its
	// validity period).
	return &Error{Reason: ReasonSignature, Err: err}
}
