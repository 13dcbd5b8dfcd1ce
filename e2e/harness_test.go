// Package e2e runs the whole sign-in flow against a real Caddy (started
// in-process with the engage_sso plugin and the demo modules), the
// development IdP, the demo upstream and headless Chromium.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/engage-sso/engage-sso/caddymodule"
	"github.com/engage-sso/engage-sso/caddymodule/directory"
	"github.com/engage-sso/engage-sso/caddymodule/graph/graphtest"
	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/token"
	_ "github.com/engage-sso/engage-sso/internal/demomodules"
	"github.com/engage-sso/engage-sso/internal/devidp"
	"github.com/engage-sso/engage-sso/internal/e2etest"
)

// env is the running deployment shared by the tests of this package.
type env struct {
	gateway  string // http://localhost:port — Engage behind engage-sso
	upstream string
	idp      string
	logFile  string
	// Northwind's and Tailspin's IdPs are test IdPs whose keys the tests
	// hold, so they can post crafted, really signed responses.
	northwind *samltest.IdP
	tailspin  *samltest.IdP
	// Wingtip's IdP encrypts assertions, and its users' groups overflow
	// into Microsoft Graph (graph is a local fake of it).
	wingtip *samltest.IdP
	graph   *graphtest.Server
	// dir talks to the demo upstream's user hook as engage-sso does, with
	// bearer tokens signed by the gateway's key (the tests wrote it).
	dir *directory.Client
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
	tmpDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		_ = caddy.Stop()
		theEnv.graph.Close()
	}
	if tmpDir != "" {
		_ = os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

const caddyfileTmpl = `{
	admin off
	log {
		output file {LOG}
		format json
		level INFO
	}
	engage_sso {
		base_url {GATEWAY}
		user_hook {UPSTREAM}/hook {
			timeout 3s
		}
		token {
			signing_key_file {SIGNING_KEY}
		}
		company contoso {
			name Contoso
			domains contoso.com
			provider contoso-strict {
				metadata_url {IDP}/` + devidp.DemoTenantID + `/federationmetadata/2007-06/federationmetadata.xml
				encryption required
				sign_requests on
				agent ` + devidp.GroupAgents + `
				supervisor ` + devidp.GroupSupervisors + `
				account_holder ` + devidp.GroupAccountHolders + `
				jit off
			}
			provider contoso {
				metadata_url {IDP}/` + devidp.DemoTenantID + `/federationmetadata/2007-06/federationmetadata.xml
				mapping groups
				agent ` + devidp.GroupAgents + `
				supervisor ` + devidp.GroupSupervisors + `
				account_holder ` + devidp.GroupAccountHolders + `
			}
		}
		company northwind {
			name Northwind Traders
			domains northwind.example
			provider northwind {
				metadata_file {NW_METADATA}
				mapping roles
				agent Engage.Agent
				supervisor Engage.Supervisor
				account_holder Engage.AccountHolder
				default_path /welcome
			}
		}
		company wingtip {
			name Wingtip Toys
			domains wingtip.example
			provider wingtip {
				metadata_file {WT_METADATA}
				encryption required
				clock_skew 10m
				agent ` + wingtipAgents + `
				supervisor ` + wingtipSupervisors + `
				account_holder ` + wingtipAccountHolders + `
				graph {
					tenant_id ` + wingtipTenant + `
					client_id ` + wingtipGraphClient + `
					client_secret {env.ENGAGE_E2E_GRAPH_SECRET}
					login_url {GRAPH}
					graph_url {GRAPH}
				}
			}
		}
		company tailspin {
			name Tailspin Toys
			domains tailspin.example
			provider tailspin {
				metadata_file {TS_METADATA}
				mapping roles
				agent Engage.Agent
				account_holder Engage.AccountHolder
				jit off
			}
		}
	}
}

{GATEWAY} {
	bind 127.0.0.1
	engage_sso
	reverse_proxy {UPSTREAM_ADDR}
}

{UPSTREAM} {
	bind 127.0.0.1
	engage_demo_app {
		jwks_url {GATEWAY}/sso/.well-known/jwks.json
		data_file {DATA_FILE}
	}
}

{IDP} {
	bind 127.0.0.1
	engage_dev_idp {
		base_url {IDP}
		service_provider {GATEWAY}/sso/saml/contoso/metadata
		service_provider {GATEWAY}/sso/saml/contoso-strict/metadata
		encrypt_for {GATEWAY}/sso/saml/contoso-strict
	}
}
`

// startEnv starts Caddy once for the package and waits until the contoso
// provider has loaded the dev IdP's metadata.
func startEnv(t *testing.T) *env {
	t.Helper()
	envOnce.Do(func() { theEnv, envErr = newEnv(t) })
	if envErr != nil {
		t.Fatalf("starting the test deployment: %v", envErr)
	}
	return theEnv
}

func newEnv(t testing.TB) (*env, error) {
	var err error
	tmpDir, err = os.MkdirTemp("", "engage-e2e-*")
	if err != nil {
		return nil, err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	e := &env{
		gateway:  fmt.Sprintf("http://localhost:%d", ports[0]),
		upstream: fmt.Sprintf("http://localhost:%d", ports[1]),
		idp:      fmt.Sprintf("http://localhost:%d", ports[2]),
		logFile:  filepath.Join(tmpDir, "caddy.log"),
	}
	e.northwind = samltest.NewIdP(t, "9d1e2f30-4a5b-4c6d-8e7f-0a1b2c3d4e5f")
	mdFile := filepath.Join(tmpDir, "northwind-metadata.xml")
	if err := os.WriteFile(mdFile, e.northwind.Metadata(t), 0o600); err != nil {
		return nil, err
	}
	e.wingtip = samltest.NewIdP(t, wingtipTenant)
	wtFile := filepath.Join(tmpDir, "wingtip-metadata.xml")
	if err := os.WriteFile(wtFile, e.wingtip.Metadata(t), 0o600); err != nil {
		return nil, err
	}
	// The fake Graph outlives the test that starts the deployment; TestMain
	// stops it.
	e.graph = graphtest.Start(wingtipTenant, wingtipGraphClient, wingtipGraphSecret)
	if err := os.Setenv("ENGAGE_E2E_GRAPH_SECRET", wingtipGraphSecret); err != nil {
		return nil, err
	}
	e.tailspin = samltest.NewIdP(t, "3c2b1a09-8f7e-4d6c-9b5a-493827160504")
	tsFile := filepath.Join(tmpDir, "tailspin-metadata.xml")
	if err := os.WriteFile(tsFile, e.tailspin.Metadata(t), 0o600); err != nil {
		return nil, err
	}
	key, err := token.GenerateKey(nil, time.Now())
	if err != nil {
		return nil, err
	}
	pemKey, err := key.MarshalPEM()
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(tmpDir, "signing-key.pem")
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		return nil, err
	}
	minter := &token.Minter{Issuer: "engage-sso", Keys: token.NewKeySet(key)}
	e.dir, err = directory.New(directory.Config{
		BaseURL: e.upstream + "/hook",
		Token: func(context.Context) (string, error) {
			return minter.MintAudience("user-hook", "e2e-test", time.Minute)
		},
	})
	if err != nil {
		return nil, err
	}
	cf := strings.NewReplacer(
		"{LOG}", e.logFile,
		"{GATEWAY}", e.gateway,
		"{UPSTREAM_ADDR}", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"{UPSTREAM}", e.upstream,
		"{IDP}", e.idp,
		"{NW_METADATA}", mdFile,
		"{TS_METADATA}", tsFile,
		"{WT_METADATA}", wtFile,
		"{GRAPH}", e.graph.URL,
		"{SIGNING_KEY}", keyFile,
		"{DATA_FILE}", filepath.Join(tmpDir, "users.json"),
	).Replace(caddyfileTmpl)
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt([]byte(cf), map[string]any{"filename": "e2e.Caddyfile"})
	if err != nil {
		return nil, fmt.Errorf("adapting the e2e Caddyfile: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(os.Stderr, "caddyfile warning: %s\n", w.String())
	}
	if err := caddy.Load(cfg, true); err != nil {
		return nil, fmt.Errorf("loading Caddy: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(e.gateway + "/sso/healthz")
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && !strings.Contains(body.String(), "unavailable") {
				return e, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("engage-sso did not become ready (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logLines returns the lines of Caddy's log that contain s.
func (e *env) logLines(t *testing.T, s string) []string {
	t.Helper()
	f, err := os.Open(e.logFile)
	if err != nil {
		t.Fatalf("opening Caddy's log: %v", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

// newBrowser starts headless Chromium for one test (see e2etest).
func newBrowser(t *testing.T) context.Context { return e2etest.NewBrowser(t) }
