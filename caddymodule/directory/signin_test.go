package directory

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/internal/demoapp"
	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// demoHook is the demo upstream's user hook, a real implementation, with a
// log of the requests it got after seeding.
type demoHook struct {
	client *Client

	mu       sync.Mutex
	log      []string // "METHOD /path"
	hideGets int      // answer this many lookups with no user
}

func newDemoHook(t *testing.T) *demoHook {
	t.Helper()
	key, err := token.GenerateKey(nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	m := &token.Minter{Keys: token.NewKeySet(key)}
	idv, err := engageauth.NewStaticVerifier(m.Keys.JWKS(), engageauth.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hookv, err := engageauth.NewStaticVerifier(m.Keys.JWKS(), engageauth.Options{Audience: "user-hook"})
	if err != nil {
		t.Fatal(err)
	}
	app, err := demoapp.New(demoapp.Config{Verifier: idv, HookVerifier: hookv})
	if err != nil {
		t.Fatal(err)
	}
	d := &demoHook{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		d.log = append(d.log, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/hook"))
		hide := r.Method == http.MethodGet && r.URL.Query().Get("company") != "" && d.hideGets > 0
		if hide {
			d.hideGets--
		}
		d.mu.Unlock()
		if hide {
			reply(w, http.StatusOK, `{"users":[]}`)
			return
		}
		app.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d.client, err = New(Config{
		BaseURL:    srv.URL + "/hook",
		HTTPClient: srv.Client(),
		Token: func(context.Context) (string, error) {
			return m.MintAudience("user-hook", "jit", time.Minute)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// seed creates users and clears the request log.
func (d *demoHook) seed(t *testing.T, users ...User) {
	t.Helper()
	for _, u := range users {
		if _, err := d.client.Create(context.Background(), u); err != nil {
			t.Fatalf("seeding %s: %v", u.Email, err)
		}
	}
	d.mu.Lock()
	d.log = nil
	d.mu.Unlock()
}

func (d *demoHook) requests() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.log...)
}

func TestSignIn(t *testing.T) {
	t.Parallel()
	login := Login{
		Company: "contoso", Provider: "contoso-azure", ExternalID: "oid-ada", Email: "ada@contoso.com",
		GivenName: "Ada", FamilyName: "Lovelace", DisplayName: "Ada Lovelace", Role: RoleSupervisor,
	}
	existing := User{
		Email: "Ada@Contoso.com", GivenName: "Ada", FamilyName: "Lovelace", DisplayName: "Ada Lovelace",
		Role: RoleSupervisor, Active: true, Company: "contoso", ExternalID: "oid-ada", Provider: "contoso-azure",
	}
	with := func(u User, edit func(*User)) User { edit(&u); return u }
	tests := []struct {
		name     string
		seed     []User
		login    Login
		jit      bool
		hideGets int
		wantErr  error
		want     *User // fields compared, ID aside
		wantReqs []string
	}{
		{
			name: "first sign-in creates", login: login, jit: true,
			want: &User{Email: "ada@contoso.com", GivenName: "Ada", FamilyName: "Lovelace", DisplayName: "Ada Lovelace",
				Role: RoleSupervisor, Active: true, Company: "contoso", ExternalID: "oid-ada", Provider: "contoso-azure"},
			wantReqs: []string{"GET /users", "GET /users", "POST /users"},
		},
		{
			name: "no account without JIT", login: login, jit: false,
			wantErr: ErrNoAccount, wantReqs: []string{"GET /users", "GET /users"},
		},
		{
			name: "known user, nothing changed", seed: []User{existing}, login: login, jit: true,
			want: &existing, wantReqs: []string{"GET /users"},
		},
		{
			name: "known user, role and names from Azure", seed: []User{with(existing, func(u *User) {
				u.Role, u.GivenName, u.Email = RoleAgent, "Augusta", "ada.old@contoso.com"
			})},
			login: login, jit: false,
			want:     with(existing, func(u *User) { u.Email = "ada@contoso.com" }).ptr(),
			wantReqs: []string{"GET /users", "PATCH /users/"},
		},
		{
			name: "empty names from Azure change nothing", seed: []User{existing},
			login: func() Login { l := login; l.GivenName, l.FamilyName, l.DisplayName = "", "", ""; return l }(), jit: true,
			want: &existing, wantReqs: []string{"GET /users"},
		},
		{
			name: "account made before SSO is linked", seed: []User{with(existing, func(u *User) { u.ExternalID, u.Provider = "", "" })},
			login: login, jit: false,
			want:     &existing,
			wantReqs: []string{"GET /users", "GET /users", "PATCH /users/"},
		},
		{
			name: "email of another Azure user", seed: []User{with(existing, func(u *User) { u.ExternalID = "oid-other" })},
			login: login, jit: true,
			wantErr: ErrEmailTaken, wantReqs: []string{"GET /users", "GET /users"},
		},
		{
			name: "deactivated", seed: []User{with(existing, func(u *User) { u.Active, u.Role = false, RoleAgent })},
			login: login, jit: true,
			wantErr: ErrInactive, wantReqs: []string{"GET /users"},
		},
		{
			name: "new email taken by a colleague", seed: []User{
				with(existing, func(u *User) { u.Email = "ada.old@contoso.com" }),
				with(existing, func(u *User) { u.Email, u.ExternalID = "ada@contoso.com", "oid-colleague" }),
			},
			login: login, jit: true,
			wantErr: ErrConflict, wantReqs: []string{"GET /users", "PATCH /users/"},
		},
		{
			name: "concurrent first sign-in", seed: []User{existing}, login: login, jit: true, hideGets: 2,
			want:     &existing,
			wantReqs: []string{"GET /users", "GET /users", "POST /users", "GET /users"},
		},
		{
			name: "no external id from the IdP", seed: []User{existing},
			login: func() Login { l := login; l.ExternalID = ""; return l }(), jit: true,
			want: &existing, wantReqs: []string{"GET /users"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := newDemoHook(t)
			d.seed(t, tt.seed...)
			d.mu.Lock()
			d.hideGets = tt.hideGets
			d.mu.Unlock()
			got, err := d.client.SignIn(context.Background(), tt.login, tt.jit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || got != nil {
					t.Errorf("SignIn = %+v, %v; want %v", got, err, tt.wantErr)
				}
			} else {
				if err != nil {
					t.Fatalf("SignIn: %v", err)
				}
				if got.ID == "" {
					t.Errorf("SignIn returned a user without id")
				}
				g := *got
				g.ID = ""
				if g != *tt.want {
					t.Errorf("SignIn = %+v; want %+v", g, *tt.want)
				}
			}
			reqs := d.requests()
			if len(reqs) != len(tt.wantReqs) {
				t.Fatalf("requests = %q; want %q", reqs, tt.wantReqs)
			}
			for i, want := range tt.wantReqs {
				if !strings.HasPrefix(reqs[i], want) {
					t.Errorf("request %d = %q; want %q…", i+1, reqs[i], want)
				}
			}
		})
	}
}

func TestSignInArguments(t *testing.T) {
	t.Parallel()
	c, _, _ := testClient(t, "http://127.0.0.1:1", nil)
	for _, l := range []Login{{Email: "a@b.co", Role: RoleAgent}, {Company: "c", Role: RoleAgent}, {Company: "c", Email: "a@b.co"}} {
		if _, err := c.SignIn(context.Background(), l, true); !errors.Is(err, ErrInvalid) {
			t.Errorf("SignIn(%+v) = %v; want ErrInvalid", l, err)
		}
	}
}

func (u User) ptr() *User { return &u }
