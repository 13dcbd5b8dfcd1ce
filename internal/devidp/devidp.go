// Package devidp is a local stand-in for Azure AD (Microsoft Entra ID) as a
// SAML identity provider, so that the whole engage-sso sign-in flow runs on
// a developer's machine and in tests without an Azure account.
//
// It is for development only: every user's password is shown on its pages.
//
// Where a service provider can observe it, it behaves like Azure: the
// entity ID https://sts.windows.net/{tenant}/, federation metadata at
// Azure's path, the SAML endpoint {base}/{tenant}/saml2 with the
// HTTP-Redirect and HTTP-POST bindings, a signed assertion in an unsigned
// Response (RSA-SHA256, exclusive canonicalization), an emailAddress NameID,
// Azure's claim URIs in Azure's order, and Azure's validity periods. It
// knows service providers by fetching their metadata from configured URLs,
// as an Azure admin enters an application's Identifier and Reply URL.
//
// The IdP keeps no login session: it asks for the password for every
// AuthnRequest, and on the My Apps page for every IdP-initiated sign-in. An
// AuthnRequest is validated when it arrives and kept in memory, for up to
// 15 minutes, until the sign-in form that answers it is posted, so that the
// user can take their time: crewjam would refuse the request 90 seconds
// after the service provider made it if it were sent again with the form.
package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"
	dsig "github.com/russellhaering/goxmldsig"
	"go.uber.org/zap"
)

// defaultFetchTimeout is the timeout of the HTTP client that fetches
// service provider metadata when Config.HTTPClient is nil.
const defaultFetchTimeout = 10 * time.Second

// Config configures a Server.
type Config struct {
	// BaseURL is the absolute http or https URL the IdP is served at, such
	// as http://localhost:9001, possibly with a path. It is required. The
	// Server must be mounted so that it sees the full request path.
	BaseURL string

	// TenantID is the Azure tenant id (a GUID) in the entity ID, the
	// endpoint paths and the tenantid claim. Default: DemoTenantID.
	TenantID string

	// Users is the directory. Default: DemoUsers().
	Users []User

	// ServiceProviders are the URLs of the metadata of the service
	// providers the IdP signs users in to, such as
	// http://localhost:8080/sso/saml/contoso/metadata. They are fetched
	// when first needed, not by New.
	ServiceProviders []string

	// EncryptFor are the entity IDs of the service providers whose
	// assertions are encrypted, to the encryption certificate their
	// metadata offers: what Azure does once an admin has uploaded that
	// certificate under Token encryption. Azure does not encrypt on its own
	// because an SP offers a certificate, and neither does this IdP.
	EncryptFor []string

	// Key and Certificate sign assertions and metadata. Set both or
	// neither; when neither is set, New generates an RSA-2048 key and a
	// self-signed certificate, valid for three years, with the subject
	// "CN=engage-sso dev IdP (not Azure)".
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate

	// HTTPClient fetches service provider metadata. Default: a client with
	// a 10 second timeout. Each fetch is also bounded by 10 seconds and by
	// the context of the request that needs it.
	HTTPClient *http.Client

	// Now tells the time. Default: time.Now.
	Now func() time.Time

	// Rand is the source of randomness for keys, IDs and sign-in form
	// tokens. It must be safe for concurrent use. Default: crypto/rand.Reader.
	Rand io.Reader

	// Logger receives the IdP's log. Default: no logging.
	Logger *zap.Logger
}

// Server is the identity provider. It is an http.Handler for all of its
// pages and endpoints, below the path of Config.BaseURL:
//
//	GET  /                        index: what this is, links, demo users
//	GET  /metadata                federation metadata
//	GET  /{tenant}/federationmetadata/2007-06/federationmetadata.xml
//	                              federation metadata at Azure's path
//	GET  /{tenant}/saml2          SSO, HTTP-Redirect binding
//	POST /{tenant}/saml2          SSO, HTTP-POST binding
//	POST /{tenant}/login          the sign-in form of an SSO request
//	GET  /myapps                  My Apps: IdP-initiated sign-in
//	POST /myapps                  sign in and go to the chosen app
type Server struct {
	baseURL  string // without a trailing slash
	basePath string // the path of baseURL
	paths    paths
	tenantID string
	entityID string

	users *directory
	cert  *x509.Certificate
	now   func() time.Time
	rand  io.Reader
	log   *zap.Logger

	idp      *saml.IdentityProvider
	signer   *dsig.SigningContext
	sps      *spRegistry
	encrypt  map[string]bool // EncryptFor
	pending  *pendingLogins
	pages    *pages
	csrf     *http.CrossOriginProtection
	metadata []byte
	mux      *http.ServeMux

	// postFormCSP is the Content-Security-Policy of the page that posts
	// the SAML Response, which allows only its own script.
	postFormCSP string
}

// paths are the absolute paths of the IdP's pages and endpoints.
type paths struct {
	index, metadata, azureMetadata, sso, login, myApps string
}

var (
	// guidPattern matches a tenant id.
	guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// basePathPattern matches the paths the IdP can be mounted at: ones
	// that mean the same to http.ServeMux patterns and to browsers.
	basePathPattern = regexp.MustCompile(`^(/[A-Za-z0-9._~-]+)*$`)
)

// New checks cfg and returns a Server. It generates a signing key if
// cfg has none; it does not fetch service provider metadata.
func New(cfg Config) (*Server, error) {
	s := &Server{
		now:  cfg.Now,
		rand: cfg.Rand,
		log:  cfg.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}

	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("devidp: base url: %w", err)
	}
	s.baseURL = strings.TrimSuffix(base.String(), "/")

	s.tenantID = strings.ToLower(cfg.TenantID)
	if s.tenantID == "" {
		s.tenantID = DemoTenantID
	}
	if !guidPattern.MatchString(s.tenantID) {
		return nil, fmt.Errorf("devidp: tenant id %q is not a GUID", cfg.TenantID)
	}
	s.entityID = "https://sts.windows.net/" + s.tenantID + "/"

	basePath := strings.TrimSuffix(base.Path, "/")
	s.basePath = basePath
	s.paths = paths{
		index:         basePath + "/",
		metadata:      basePath + "/metadata",
		azureMetadata: basePath + "/" + s.tenantID + "/federationmetadata/2007-06/federationmetadata.xml",
		sso:           basePath + "/" + s.tenantID + "/saml2",
		login:         basePath + "/" + s.tenantID + "/login",
		myApps:        basePath + "/myapps",
	}

	users := cfg.Users
	if users == nil {
		users = DemoUsers()
	}
	if s.users, err = newDirectory(users); err != nil {
		return nil, fmt.Errorf("devidp: users: %w", err)
	}

	spURLs, err := checkSPURLs(cfg.ServiceProviders)
	if err != nil {
		return nil, fmt.Errorf("devidp: service providers: %w", err)
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultFetchTimeout}
	}
	s.sps = newSPRegistry(client, s.log, spURLs)
	s.encrypt = map[string]bool{}
	for _, id := range cfg.EncryptFor {
		s.encrypt[id] = true
	}

	key := cfg.Key
	s.cert = cfg.Certificate
	if err := checkKeyPair(key, s.cert); err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	if key == nil {
		if key, s.cert, err = generateSigningKey(s.rand, s.now()); err != nil {
			return nil, fmt.Errorf("devidp: %w", err)
		}
	}
	if s.signer, err = newSigningContext(key, s.cert); err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}

	if s.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	s.postFormCSP = postFormCSP()
	s.pending = newPendingLogins(s.now, s.rand)

	s.csrf = http.NewCrossOriginProtection()
	if err := s.csrf.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("devidp: base url: %w", err)
	}

	if err := s.newIdentityProvider(key); err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	if s.metadata, err = s.buildMetadata(); err != nil {
		return nil, fmt.Errorf("devidp: %w", err)
	}
	s.mux = s.routes()
	return s, nil
}

// newIdentityProvider sets up the crewjam IdentityProvider. crewjam takes
// the entity ID from MetadataURL, so that is the Azure-style entity ID;
// the metadata is served by the Server itself.
func (s *Server) newIdentityProvider(key *rsa.PrivateKey) error {
	entityURL, err := url.Parse(s.entityID)
	if err != nil {
		return fmt.Errorf("entity id: %w", err)
	}
	ssoURL, err := url.Parse(s.SSOURL())
	if err != nil {
		return fmt.Errorf("sso url: %w", err)
	}
	glue := samlGlue{s: s}
	s.idp = &saml.IdentityProvider{
		Key:                     key,
		Certificate:             s.cert,
		Logger:                  zap.NewStdLog(s.log.Named("crewjam")),
		MetadataURL:             *entityURL,
		SSOURL:                  *ssoURL,
		ServiceProviderProvider: glue,
		SessionProvider:         glue,
		AssertionMaker:          glue,
		ResponseWriter:          glue,
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		ResponseFormTemplate:    s.pages.postForm,
		Clock:                   newDsigClock(s.now),
		OnError:                 s.onError,
		NameIDFormats:           []saml.NameIDFormat{saml.EmailAddressNameIDFormat},
	}
	return nil
}

// azureEncrypter encrypts assertions as Azure's SAML token encryption
// does, for service providers whose metadata publishes an encryption
// certificate: AES-256-CBC content, the key wrapped with RSA-OAEP (MGF1,
// SHA-1 digest). See makeResponse.
func azureEncrypter() xmlenc.Encrypter {
	enc := xmlenc.OAEP()
	enc.DigestMethod = &xmlenc.SHA1
	enc.BlockCipher = xmlenc.AES256CBC
	return enc
}

// absURL returns the absolute URL of path, one of s.paths.
func (s *Server) absURL(path string) string {
	return s.baseURL + strings.TrimPrefix(path, s.basePath)
}

// routes returns the handler of all the IdP's paths.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+s.paths.index+"{$}", s.handleIndex)
	mux.HandleFunc("GET "+s.paths.metadata, s.handleMetadata)
	mux.HandleFunc("GET "+s.paths.azureMetadata, s.handleMetadata)
	mux.HandleFunc("GET "+s.paths.sso, s.handleSSO)
	mux.HandleFunc("POST "+s.paths.sso, s.handleSSO)
	mux.HandleFunc("POST "+s.paths.login, s.handleLogin)
	mux.HandleFunc("GET "+s.paths.myApps, s.handleMyApps)
	mux.HandleFunc("POST "+s.paths.myApps, s.handleMyAppsSignIn)
	mux.HandleFunc("/", s.handleNotFound)
	return mux
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// EntityID returns the IdP's entity ID, which is also the Issuer of its
// assertions: https://sts.windows.net/{tenant}/, as with Azure.
func (s *Server) EntityID() string { return s.entityID }

// MetadataURL returns the URL of the IdP's federation metadata, at Azure's
// path: {base}/{tenant}/federationmetadata/2007-06/federationmetadata.xml.
func (s *Server) MetadataURL() string {
	return s.absURL(s.paths.azureMetadata)
}

// SSOURL returns the URL of the IdP's SAML endpoint, {base}/{tenant}/saml2.
func (s *Server) SSOURL() string {
	return s.absURL(s.paths.sso)
}

// MyAppsURL returns the URL of the My Apps page, {base}/myapps.
func (s *Server) MyAppsURL() string {
	return s.absURL(s.paths.myApps)
}

// Metadata returns the IdP's signed federation metadata document, as it is
// served. The caller may modify the returned slice.
func (s *Server) Metadata() ([]byte, error) {
	return append([]byte(nil), s.metadata...), nil
}

// Certificate returns the certificate the IdP signs with.
func (s *Server) Certificate() *x509.Certificate { return s.cert }

// parseBaseURL checks that raw is an absolute http or https URL without
// credentials, query or fragment, whose path the IdP can be mounted at.
func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%q is not an absolute http or https URL", raw)
	case u.Host == "":
		return nil, fmt.Errorf("%q has no host", raw)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("%q must not have credentials, a query or a fragment", raw)
	case !basePathPattern.MatchString(strings.TrimSuffix(u.EscapedPath(), "/")):
		return nil, fmt.Errorf("%q: unsupported path", raw)
	}
	return u, nil
}

// checkSPURLs checks that the service provider metadata URLs are absolute
// http or https URLs, and drops duplicates.
func checkSPURLs(raw []string) ([]string, error) {
	var out []string
	seen := make(map[string]bool, len(raw))
	for _, r := range raw {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("metadata url: %w", err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("metadata url %q is not an absolute http or https URL", r)
		}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out, nil
}
