// Package multi runs several Caddy instances with the engage_sso plugin
// against one real Redis, as a load-balanced deployment would, and checks
// what issue 3 asks of the Redis store: a session made on one instance is
// honoured by the others, a logout or a used RelayState or assertion on one
// is seen by all, and a Redis outage fails closed and heals by itself.
//
// Caddy is a process-wide singleton, so each instance is a separate
// process: cmd/caddy (Caddy with the plugin and the demo modules) is built
// once per test binary and started with `caddy run --adapter caddyfile`.
//
// # Setup of a cluster
//
// Every test that needs one starts its own cluster (newCluster): a
// redis-server (internal/redistest, so it can be stopped and started on
// the same port) and two instances, A and B, on free 127.0.0.1 ports:
//
//	http://localhost:<A>        engage_sso + reverse_proxy to A's demo app
//	http://localhost:<A up>     engage_demo_app (JWKS of A)
//	http://localhost:<A idp>    engage_dev_idp, the Azure-like IdP (Chromium test)
//	http://localhost:<B>        engage_sso + reverse_proxy to B's demo app
//	http://localhost:<B up>     engage_demo_app (JWKS of B)
//
// Both instances have base_url http://localhost:<A>: SAML Destination,
// Recipient and Audience are built from base_url, so a response addressed
// to "the deployment" is valid at either instance, as behind a load
// balancer whose public URL is base_url. Each site's address is its own
// port (http://localhost:<port>, so the Host header a client sends for that
// URL matches it), and a test talks to B simply by sending requests to B's
// port. Cookies are not bound to ports, so a browser signed in through A
// sends the same cookie to B.
//
// Both instances use the same store (redis, unique key prefix, 500 ms
// timeouts), session cache_ttl 1s, token signing_key_file (a P-256 key the
// test writes) and companies: contoso, whose IdP is the dev IdP served by
// A, and northwind, whose IdP is a samltest.IdP held by the test, so tests
// post really signed, Azure-shaped responses to either ACS.
//
// Each instance logs JSON to its own file; the logs are printed when a test
// fails. Processes are killed by t.Cleanup, by TestMain for any left over,
// and by the kernel if the test binary dies (Pdeathsig, on Linux).
package multi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/saml/samltest"
	"github.com/engage-sso/engage-sso/caddymodule/token"
	"github.com/engage-sso/engage-sso/internal/devidp"
	"github.com/engage-sso/engage-sso/internal/redistest"
)

// cacheTTL is the instances' session cache_ttl.
const cacheTTL = time.Second

// startTimeout bounds how long an instance may take to become ready.
const startTimeout = 30 * time.Second

// build is the Caddy binary, built once per test binary.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// running holds the Caddy processes that are alive, so that TestMain can
// kill any a test left behind.
var running struct {
	sync.Mutex
	procs map[*os.Process]struct{}
}

func TestMain(m *testing.M) {
	code := m.Run()
	running.Lock()
	for p := range running.procs {
		_ = p.Kill()
	}
	running.Unlock()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	os.Exit(code)
}

// caddyBinary builds cmd/caddy (without -race, for speed) on first use and
// returns its path.
func caddyBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		start := time.Now()
		build.dir, build.err = os.MkdirTemp("", "engage-multi-*")
		if build.err != nil {
			return
		}
		root, err := repoRoot()
		if err != nil {
			build.err = err
			return
		}
		bin := filepath.Join(build.dir, "caddy")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/caddy")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/caddy: %w\n%s", err, out)
			return
		}
		build.bin = bin
		fmt.Fprintf(os.Stderr, "multi: built cmd/caddy in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if build.err != nil {
		t.Fatalf("building Caddy: %v", build.err)
	}
	return build.bin
}

// repoRoot is the directory of the module's go.mod.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// cluster is a Redis and two Caddy instances that share it.
type cluster struct {
	redis  *redistest.Server
	prefix string // the store's key prefix
	base   string // base_url of both instances: A's URL
	a, b   *instance
	// northwind is the IdP of the northwind company; the tests hold its
	// key.
	northwind *samltest.IdP
}

// instance is one Caddy process.
type instance struct {
	name     string
	url      string // http://localhost:port, the guarded site
	upstream string // its demo app
	idp      string // the dev IdP's URL (A only)
	logFile  string // Caddy's JSON log
	outFile  string // the process's stdout and stderr
	cmd      *exec.Cmd
	exited   chan struct{}
	// logged is set when the logs are already in a failure message.
	logged bool
}

const caddyfileTmpl = `{
	admin off
	log {
		output file {LOG}
		format json
		level INFO
	}
	engage_sso {
		base_url {BASE}
		store redis {
			address {REDIS}
			prefix {PREFIX}
			dial_timeout 500ms
			read_timeout 500ms
			write_timeout 500ms
		}
		session {
			cache_ttl {CACHE_TTL}
		}
		token {
			signing_key_file {KEY}
		}
		company contoso {
			name Contoso
			domains contoso.com
			provider contoso {
				metadata_url {DEVIDP}/` + devidp.DemoTenantID + `/federationmetadata/2007-06/federationmetadata.xml
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
	}
}

{SITE} {
	bind 127.0.0.1
	engage_sso
	reverse_proxy {UPSTREAM_ADDR}
}

{UPSTREAM} {
	bind 127.0.0.1
	engage_demo_app {
		jwks_url {SITE}/sso/.well-known/jwks.json
	}
}
`

const devIdPTmpl = `
{DEVIDP} {
	bind 127.0.0.1
	engage_dev_idp {
		base_url {DEVIDP}
		service_provider {BASE}/sso/saml/contoso/metadata
	}
}
`

// newCluster starts a Redis and instances A and B, and waits until both
// serve, have loaded both providers' metadata and listen for session
// revocations. Everything is stopped when t ends.
func newCluster(t *testing.T) *cluster {
	t.Helper()
	start := time.Now()
	bin := caddyBinary(t)
	dir := t.TempDir()

	c := &cluster{
		redis:     redistest.StartServer(t),
		prefix:    "e2e-" + randomHex(t, 4) + ":",
		northwind: samltest.NewIdP(t, "9d1e2f30-4a5b-4c6d-8e7f-0a1b2c3d4e5f"),
	}
	mdFile := filepath.Join(dir, "northwind-metadata.xml")
	writeFile(t, mdFile, c.northwind.Metadata(t))
	key, err := token.GenerateKey(rand.Reader, time.Now())
	if err != nil {
		t.Fatalf("generating the signing key: %v", err)
	}
	pem, err := key.MarshalPEM()
	if err != nil {
		t.Fatalf("encoding the signing key: %v", err)
	}
	keyFile := filepath.Join(dir, "signing-key.pem")
	writeFile(t, keyFile, pem)

	common := map[string]string{
		"{REDIS}":       c.redis.Addr(),
		"{PREFIX}":      c.prefix,
		"{CACHE_TTL}":   cacheTTL.String(),
		"{KEY}":         keyFile,
		"{NW_METADATA}": mdFile,
	}
	// A first: B's contoso provider loads its metadata from A's dev IdP.
	c.a = startInstance(t, bin, "A", dir, true, func(ports []int) map[string]string {
		site := localURL(ports[0])
		return merge(common, map[string]string{
			"{BASE}":   site,
			"{SITE}":   site,
			"{DEVIDP}": localURL(ports[2]),
		})
	})
	c.base = c.a.url
	c.b = startInstance(t, bin, "B", dir, false, func(ports []int) map[string]string {
		return merge(common, map[string]string{
			"{BASE}":   c.base,
			"{SITE}":   localURL(ports[0]),
			"{DEVIDP}": c.a.idp,
		})
	})
	c.waitSubscribers(t, 2)
	t.Logf("cluster up in %v: A %s, B %s, redis %s", time.Since(start).Round(time.Millisecond), c.a.url, c.b.url, c.redis.Addr())
	return c
}

// startInstance starts a Caddy process whose Caddyfile gets its values from
// vars, given free ports: [0] the guarded site, [1] the demo app, [2] the
// dev IdP, which the instance serves if serveIdP is set. It retries with
// other ports if one was taken meanwhile.
func startInstance(t *testing.T, bin, name, dir string, serveIdP bool, vars func(ports []int) map[string]string) *instance {
	t.Helper()
	var lastErr error
	for attempt := range 3 {
		ports := make([]int, 3)
		for i := range ports {
			p, err := redistest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports[i] = p
		}
		v := vars(ports)
		in := &instance{
			name:     name,
			url:      v["{SITE}"],
			upstream: localURL(ports[1]),
			logFile:  filepath.Join(dir, fmt.Sprintf("caddy-%s-%d.log", name, attempt)),
			outFile:  filepath.Join(dir, fmt.Sprintf("caddy-%s-%d.out", name, attempt)),
		}
		tmpl := caddyfileTmpl
		if serveIdP {
			in.idp = v["{DEVIDP}"]
			tmpl += devIdPTmpl
		}
		v["{LOG}"] = in.logFile
		v["{UPSTREAM}"] = in.upstream
		v["{UPSTREAM_ADDR}"] = fmt.Sprintf("127.0.0.1:%d", ports[1])
		cf := tmpl
		for k, val := range v {
			cf = strings.ReplaceAll(cf, k, val)
		}
		cfFile := filepath.Join(dir, fmt.Sprintf("Caddyfile.%s", name))
		writeFile(t, cfFile, []byte(cf))

		lastErr = in.start(t, bin, cfFile, filepath.Join(dir, "xdg-"+name))
		if lastErr == nil {
			return in
		}
		if !strings.Contains(lastErr.Error(), "address already in use") {
			break
		}
	}
	t.Fatalf("starting instance %s: %v", name, lastErr)
	return nil
}

// start runs Caddy with the Caddyfile and waits until it is ready. t's
// cleanup kills it, after printing its logs if t failed.
func (in *instance) start(t *testing.T, bin, caddyfile, xdg string) error {
	out, err := os.Create(in.outFile)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(bin, "run", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = out, out
	// Caddy's autosave and storage go to the test's directory, not $HOME.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+xdg+"/config", "XDG_DATA_HOME="+xdg+"/data")
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	in.cmd, in.exited = cmd, make(chan struct{})
	running.Lock()
	if running.procs == nil {
		running.procs = map[*os.Process]struct{}{}
	}
	running.procs[cmd.Process] = struct{}{}
	running.Unlock()
	go func() {
		_ = cmd.Wait()
		close(in.exited)
	}()
	t.Cleanup(func() {
		in.kill()
		if t.Failed() && !in.logged {
			in.dumpLogs(t)
		}
	})
	if err := in.waitReady(t.Context()); err != nil {
		in.kill()
		in.logged = true
		return fmt.Errorf("%w\n%s", err, in.logs())
	}
	return nil
}

// waitReady polls /sso/healthz until it answers 200 with every provider
// ready.
func (in *instance) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, in.url+"/sso/healthz", nil)
		resp, err := client.Do(req)
		if err == nil {
			var body bytes.Buffer
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && !strings.Contains(body.String(), "unavailable") {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(body.String()))
		} else {
			last = err.Error()
		}
		select {
		case <-in.exited:
			return fmt.Errorf("instance %s exited during start (%s)", in.name, in.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("instance %s not ready after %v: last healthz: %s", in.name, startTimeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kill stops the process at once and waits for it.
func (in *instance) kill() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	_ = in.cmd.Process.Kill()
	<-in.exited
	running.Lock()
	delete(running.procs, in.cmd.Process)
	running.Unlock()
}

// logs returns the tail of the instance's output and log file.
func (in *instance) logs() string {
	var b strings.Builder
	for _, f := range []string{in.outFile, in.logFile} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		const tail = 32 << 10
		if len(data) > tail {
			data = append([]byte("...\n"), data[len(data)-tail:]...)
		}
		fmt.Fprintf(&b, "--- %s ---\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}

func (in *instance) dumpLogs(t *testing.T) {
	t.Logf("logs of instance %s (%s):\n%s", in.name, in.url, in.logs())
}

// logLines returns the lines of the instance's log that contain s.
func (in *instance) logLines(t *testing.T, s string) []string {
	t.Helper()
	f, err := os.Open(in.logFile)
	if err != nil {
		t.Fatalf("opening the log of instance %s: %v", in.name, err)
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

// waitLogLine waits up to two seconds for a log line of the instance that
// contains every one of parts, and returns it.
func (in *instance) waitLogLine(t *testing.T, parts ...string) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		for _, l := range in.logLines(t, parts[0]) {
			ok := true
			for _, p := range parts[1:] {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				return l, true
			}
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSubscribers waits until n clients listen on the store's revocation
// channel, so that a logout is announced to every instance.
func (c *cluster) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	if d, ok := c.subscribersWithin(t, n, 10*time.Second); !ok {
		t.Fatalf("%d instances subscribed to %srevoked after %v; want %d", d, c.prefix, 10*time.Second, n)
	}
}

// subscribersWithin polls PUBSUB NUMSUB for the revocation channel until it
// reaches n or the time is up; it returns the last count.
func (c *cluster) subscribersWithin(t *testing.T, n int, within time.Duration) (int, bool) {
	t.Helper()
	channel := c.prefix + "revoked"
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	got := -1
	for {
		reply, err := redistest.Do(ctx, c.redis.Addr(), "PUBSUB", "NUMSUB", channel)
		if a, ok := reply.([]any); err == nil && ok && len(a) == 2 {
			if count, ok := replyInt(a[1]); ok {
				got = count
			}
			if got == n {
				return got, true
			}
		}
		select {
		case <-ctx.Done():
			return got, false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func localURL(port int) string { return fmt.Sprintf("http://localhost:%d", port) }

// merge returns a new map with the entries of ms, later ones winning.
func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		maps.Copy(out, m)
	}
	return out
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
