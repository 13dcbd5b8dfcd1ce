package demoapp

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// TestUsersPage: account holders see their company's users, by email, with
// whether JIT created them; others get a 403 page.
func TestUsersPage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "users.json")
	// One user added by hand, as an operator would before starting the demo.
	seed := `{"version":1,"users":[{"id":"u-hand","email":"zoe@contoso.com","given_name":"Zoe","family_name":"Hand",` +
		`"role":"supervisor","active":true,"company":"contoso","created_at":"2030-01-01T00:00:00Z","updated_at":"2030-01-01T00:00:00Z"}]}`
	if err := os.WriteFile(path, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newHookFixture(t, path)
	auth := "Bearer " + f.hookToken(t, "jit")
	for _, body := range []string{
		`{"email":"Bob@contoso.com","display_name":"Bob <b>","role":"agent","company":"contoso","active":false}`,
		`{"email":"ada@contoso.com","given_name":"Ada","family_name":"Lovelace","role":"account_holder","company":"contoso","external_id":"oid-ada"}`,
		`{"email":"eve@fabrikam.com","role":"account_holder","company":"fabrikam"}`,
	} {
		if status, out := f.call(t, "POST", "/hook/users", auth, body); status != http.StatusCreated {
			t.Fatalf("create %s: %d %s", body, status, out)
		}
	}

	get := func(role string) (int, string) {
		t.Helper()
		return f.call(t, "GET", "/users", "", "", "X-Engage-Identity", f.identityToken(t, role, "contoso"))
	}
	status, page := get(engageauth.RoleAccountHolder)
	if status != http.StatusOK {
		t.Fatalf("GET /users as account holder: %d %s", status, page)
	}
	rows := regexp.MustCompile(`(?s)<tr class="user[^"]*" data-id="[^"]*">(.*?)</tr>`).FindAllStringSubmatch(page, -1)
	want := []struct{ email, name, role, active, jit, oid string }{
		{"ada@contoso.com", "Ada Lovelace", "Account holder", "yes", "yes", "oid-ada"},
		{"Bob@contoso.com", "Bob &lt;b&gt;", "Agent", "no", "yes", ""},
		{"zoe@contoso.com", "Zoe Hand", "Supervisor", "yes", "no", ""},
	}
	if len(rows) != len(want) {
		t.Fatalf("users page lists %d users; want %d (contoso only):\n%s", len(rows), len(want), page)
	}
	cell := regexp.MustCompile(`<td[^>]*>([^<]*)</td>`)
	for i, w := range want {
		cells := cell.FindAllStringSubmatch(rows[i][1], -1)
		got := make([]string, len(cells))
		for j, c := range cells {
			got[j] = c[1]
		}
		if len(got) < 6 || got[0] != w.email || got[1] != w.name || got[2] != w.role || got[3] != w.active ||
			got[4] != w.jit || got[5] != w.oid {
			t.Errorf("row %d = %q; want %+v", i, got, w)
		}
	}
	if !strings.Contains(page, `title="created through the user hook by jit"`) {
		t.Errorf("users page does not name the creator of JIT users")
	}
	if strings.Contains(page, "fabrikam") {
		t.Errorf("users page of contoso shows fabrikam's user")
	}
	if got := element(t, page, "user-count"); got != "3" {
		t.Errorf("user-count = %q; want 3", got)
	}

	for _, role := range []string{engageauth.RoleAgent, engageauth.RoleSupervisor} {
		status, page := get(role)
		if status != http.StatusForbidden || !strings.Contains(page, `id="forbidden"`) || strings.Contains(page, "ada@contoso.com") {
			t.Errorf("GET /users as %s: %d; want a 403 page without users:\n%s", role, status, page)
		}
	}
	if status, _ := f.call(t, "GET", "/users", "", ""); status != http.StatusUnauthorized {
		t.Errorf("GET /users without identity: %d; want 401", status)
	}
}

// TestUsersLink: only account holders get a link to the users page, which
// says so when the company has no users yet.
func TestUsersLink(t *testing.T) {
	t.Parallel()
	f := newHookFixture(t, "")
	for role, wantLink := range map[string]bool{
		engageauth.RoleAccountHolder: true, engageauth.RoleSupervisor: false, engageauth.RoleAgent: false,
	} {
		_, page := f.call(t, "GET", "/", "", "", "X-Engage-Identity", f.identityToken(t, role, "contoso"))
		if got := strings.Contains(page, `id="users-link"`); got != wantLink {
			t.Errorf("home page of %s has users link: %v; want %v", role, got, wantLink)
		}
	}
	_, page := f.call(t, "GET", "/users", "", "", "X-Engage-Identity", f.identityToken(t, engageauth.RoleAccountHolder, "contoso"))
	if !strings.Contains(page, `id="no-users"`) {
		t.Errorf("users page of an empty company lacks the empty note:\n%s", page)
	}
}
