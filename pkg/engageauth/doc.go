// Package engageauth verifies the identity that engage-sso sends to upstream
// applications, for upstreams written in Go.
//
// engage-sso signs users in with SAML and then forwards every request it lets
// through with an X-Engage-Identity header: a short-lived JWT (ES256) naming
// the user, their role and company. The public keys are published by
// engage-sso at /sso/.well-known/jwks.json. Wrap your handler and read the
// identity from the request context:
//
//	v, err := engageauth.NewVerifier(engageauth.Options{
//		JWKSURL: "http://localhost:8080/sso/.well-known/jwks.json",
//	})
//	if err != nil { log.Fatal(err) }
//	http.ListenAndServe(":9000", v.Middleware(app))
//
//	// inside app:
//	id, _ := engageauth.FromContext(r.Context())
//	fmt.Fprintf(w, "hello %s (%s)", id.Name, id.Role)
//
// The middleware answers 401 with a small JSON body when the header is
// missing or the token does not verify, so the application only ever sees
// requests with a verified identity. Never trust other headers or cookies
// for identity: only the token is signed.
//
// Verification accepts ES256 only, requires the "kid" header, the issuer,
// audience, subject and expiry, and allows Options.Leeway of clock skew. Keys
// are fetched from Options.JWKSURL on first use, cached, and fetched again
// when a token names an unknown key (at most once every RefreshInterval) or
// when the cache is older than MaxKeyAge.
package engageauth
