package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/engage-sso/engage-sso/caddymodule/graph/graphtest"
	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

const (
	otherOID      = "99999999-0000-4000-8000-000000000099"
	graphClientID = "3c2b1a09-8f7e-4d6c-5b4a-392817161514"
	graphSecret   = "s3cr3t~value-that-must-not-leak"
)

// newGraphEnv is a test env whose Contoso provider resolves group overage
// through the fake Graph.
func newGraphEnv(t *testing.T) (*testEnv, *graphtest.Server) {
	t.Helper()
	g := graphtest.New(t, testTenant, graphClientID, graphSecret)
	g.PageSize(2) // several pages even for a few groups
	e := newEnv(t, envConfig{companies: withContoso(func(p *Provider) {
		p.Graph = &GraphConfig{TenantID: testTenant, ClientID: graphClientID, ClientSecret: graphSecret, LoginURL: g.URL, GraphURL: g.URL}
	})})
	return e, g
}

// overageUser is a user in "too many" groups: the supervisor group, among
// others, behind a groups.link.
func overageUser(oid string) samltest.User {
	return samltest.User{ObjectID: oid, Email: "olga@contoso.example", GivenName: "Olga", Surname: "Many", Overage: true}
}

func TestGroupOverageThroughGraph(t *testing.T) {
	t.Parallel()
	e, g := newGraphEnv(t)
	const oid = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	g.SetGroups(oid, "11111111-0000-4000-8000-000000000001", groupSupervisor, "11111111-0000-4000-8000-000000000002", groupAgent, "11111111-0000-4000-8000-000000000003")

	res := e.respond(t, "contoso", samltest.ResponseOptions{User: overageUser(oid)})
	if res.rec.Code != http.StatusSeeOther || res.cookie("engage_sso") == nil {
		t.Fatalf("overage login = %d %q; want 303 and a session\n%s", res.rec.Code, res.reason(), res.body())
	}
	sess := e.sessionOf(t, res)
	if sess.Role != "supervisor" {
		t.Errorf("role from Graph = %q; want supervisor (the highest of the user's groups)", sess.Role)
	}
	tok, gr := g.Calls()
	if tok != 1 || gr < 3 {
		t.Errorf("Graph calls = %d token, %d groups; want 1 token and at least 3 pages", tok, gr)
	}

	// The next sign-in reads the groups from the store, not Graph.
	if res := e.respond(t, "contoso", samltest.ResponseOptions{User: overageUser(oid)}); res.rec.Code != http.StatusSeeOther {
		t.Fatalf("second overage login = %d %q; want 303", res.rec.Code, res.reason())
	}
	if tok2, gr2 := g.Calls(); tok2 != tok || gr2 != gr {
		t.Errorf("second sign-in called Graph (%d token, %d groups calls, before %d, %d); want the cached groups", tok2, gr2, tok, gr)
	}
	if n := e.store.cacheGets.Load(); n < 2 {
		t.Errorf("cache reads = %d; want at least 2", n)
	}
}

func TestGroupOverageFailsClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      func(g *graphtest.Server)
		attrs      func(idp *samltest.IdP, oid string) []samltest.Attribute
		wantStatus int
		wantReason string
		wantLog    string // in the refusal's log line
	}{
		{
			name: "secret refused",
			setup: func(g *graphtest.Server) {
				g.Fail(graphtest.StepToken, http.StatusUnauthorized, graphtest.AADErrorBody("invalid_client", 7000215, "Invalid client secret provided."))
			},
			wantStatus: http.StatusForbidden, wantReason: "graph_denied", wantLog: "AADSTS7000215",
		},
		{
			name: "no permission",
			setup: func(g *graphtest.Server) {
				g.Fail(graphtest.StepGraph, http.StatusForbidden, graphtest.GraphErrorBody("Authorization_RequestDenied", "Insufficient privileges to complete the operation."))
			},
			wantStatus: http.StatusForbidden, wantReason: "graph_denied", wantLog: "Authorization_RequestDenied",
		},
		{
			name: "Graph down",
			setup: func(g *graphtest.Server) {
				for range 3 {
					g.Fail(graphtest.StepGraph, http.StatusServiceUnavailable, graphtest.GraphErrorBody("serviceNotAvailable", "Service unavailable."))
				}
			},
			wantStatus: http.StatusServiceUnavailable, wantReason: "graph_unavailable",
		},
		{
			name:       "unknown user",
			setup:      func(*graphtest.Server) {},
			wantStatus: http.StatusForbidden, wantReason: "graph_error", wantLog: "Request_ResourceNotFound",
		},
		{
			name:  "groups.link for another user",
			setup: func(*graphtest.Server) {},
			attrs: func(idp *samltest.IdP, oid string) []samltest.Attribute {
				// The claim names the user; the link names someone else,
				// who has groups.
				attrs := idp.Attributes(overageUser(oid))
				for i, a := range attrs {
					if a.Name == samltest.ClaimGroupsLink {
						attrs[i].Values = []string{"https://graph.windows.net/" + testTenant + "/users/" + otherOID + "/getMemberObjects"}
					}
				}
				return attrs
			},
			wantStatus: http.StatusForbidden, wantReason: "graph_error", wantLog: "the groups.link names user " + otherOID,
		},
		{
			name:  "tenant of another company",
			setup: func(*graphtest.Server) {},
			attrs: func(idp *samltest.IdP, oid string) []samltest.Attribute {
				attrs := idp.Attributes(overageUser(oid))
				for i, a := range attrs {
					if a.Name == samltest.ClaimTenantID {
						attrs[i].Values = []string{fabrikamTenant}
					}
				}
				return attrs
			},
			wantStatus: http.StatusForbidden, wantReason: "graph_error", wantLog: "the assertion is from tenant " + fabrikamTenant,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, g := newGraphEnv(t)
			const oid = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e"
			if tt.name != "unknown user" {
				g.SetGroups(oid, groupSupervisor)
				g.SetGroups(otherOID, groupSupervisor)
			}
			tt.setup(g)
			o := samltest.ResponseOptions{User: overageUser(oid)}
			if tt.attrs != nil {
				o.Attributes = tt.attrs(e.idp, oid)
			}
			res := e.respond(t, "contoso", o)
			if res.rec.Code != tt.wantStatus || res.reason() != tt.wantReason || res.cookie("engage_sso") != nil {
				t.Fatalf("login = %d %q (session %v); want %d %q and no session\n%s",
					res.rec.Code, res.reason(), res.cookie("engage_sso") != nil, tt.wantStatus, tt.wantReason, res.body())
			}
			if refusals := e.logsWith("reason", tt.wantReason); len(refusals) != 1 || !strings.Contains(fmtAny(refusals[0].ContextMap()["error"]), tt.wantLog) {
				t.Errorf("refusal log lines = %v; want one whose error names %q", refusals, tt.wantLog)
			}
			if strings.Contains(res.body(), graphSecret) {
				t.Error("the page shows the client secret")
			}
			for _, le := range e.logs.All() {
				for _, f := range le.Context {
					if strings.Contains(f.String, graphSecret) || (f.Interface != nil && strings.Contains(fmtAny(f.Interface), graphSecret)) {
						t.Errorf("a log line carries the client secret: %v", le)
					}
				}
			}
		})
	}
}

// TestGroupOverageWithoutGraph checks the page of a provider without Graph
// credentials: the admin learns both ways out.
func TestGroupOverageWithoutGraph(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	res := e.respond(t, "contoso", samltest.ResponseOptions{User: overageUser("7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4f")})
	if res.rec.Code != http.StatusForbidden || res.reason() != "group_overage" {
		t.Fatalf("overage without Graph = %d %q; want 403 group_overage", res.rec.Code, res.reason())
	}
	for _, want := range []string{"Groups assigned to the application", "Microsoft Graph"} {
		if !strings.Contains(res.body(), want) {
			t.Errorf("the group overage page does not mention %q", want)
		}
	}
}

// sessionOf loads the session whose cookie res set.
func (e *testEnv) sessionOf(t *testing.T, res result) *session.Session {
	t.Helper()
	c := res.cookie("engage_sso")
	if c == nil {
		t.Fatal("no session cookie")
	}
	s, err := e.mem.LoadSession(context.Background(), session.IDFromToken(c.Value))
	if err != nil {
		t.Fatalf("LoadSession() = %v", err)
	}
	return s
}

func fmtAny(v any) string { return fmt.Sprint(v) }
