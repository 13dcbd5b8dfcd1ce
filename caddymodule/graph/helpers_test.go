package graph

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/graph/graphtest"
)

const (
	tenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	clientID = "0b1c2d3e-4f50-4617-8283-94a5b6c7d8e9"
	secret   = "Xq8~s3cr3t.V4lue_-abcdefghijklmnopqrstu"
	userOID  = "4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8f9"
)

// newFake starts a fake tenant knowing clientID with secret.
func newFake(t *testing.T) *graphtest.Server {
	t.Helper()
	return graphtest.New(t, tenant, clientID, secret)
}

// newClient returns a client of the fake; mod, if not nil, changes the
// configuration first.
func newClient(t *testing.T, fake *graphtest.Server, mod func(*Config)) *Client {
	t.Helper()
	cfg := Config{TenantID: tenant, ClientID: clientID, ClientSecret: secret, LoginURL: fake.URL, GraphURL: fake.URL}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// groupIDs returns n distinct lower-case group GUIDs.
func groupIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
	}
	return ids
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingServer is a server that must never be called; it counts the
// requests it gets anyway.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":[{"@odata.type":"#microsoft.graph.group","id":"66666666-6666-4666-8666-666666666666"}]}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}
