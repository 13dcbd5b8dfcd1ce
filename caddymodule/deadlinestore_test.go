package caddymodule

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// hangingStore never answers until the caller gives up, like a Redis that
// accepts connections and then stalls.
type hangingStore struct{ session.Store }

func (hangingStore) LoadSession(ctx context.Context, _ string) (*session.Session, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestDeadlineStoreBoundsEveryCall(t *testing.T) {
	d := deadlineStore{Store: hangingStore{}, timeout: 50 * time.Millisecond}
	start := time.Now()
	_, err := d.LoadSession(context.Background(), "x")
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("LoadSession on a hung store = %v after %v; want DeadlineExceeded after ~50ms", err, time.Since(start))
	}
}

// With a hung store behind the deadline, a browser request gets the 503
// page promptly instead of waiting.
func TestHungStoreAnswers503Promptly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	tok, _ := e.newSession(t, nil)
	e.app.store = deadlineStore{Store: hangingStore{Store: e.app.store}, timeout: 100 * time.Millisecond}
	start := time.Now()
	res := e.get(t, "/", e.sessionCookie(tok))
	if res.rec.Code != http.StatusServiceUnavailable || res.next != nil {
		t.Errorf("hung store: status %d, passed %v; want 503 and not passed", res.rec.Code, res.next != nil)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the 503 took %v; want about the store deadline", d)
	}
}

func TestRedisCallTimeout(t *testing.T) {
	s := RedisStore{}
	if err := s.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if got := s.CallTimeout(); got != 11*time.Second {
		t.Errorf("default CallTimeout() = %v; want dial 5s + write 3s + read 3s", got)
	}
}

func TestCacheTTLCaddyfile(t *testing.T) {
	for _, tt := range []struct {
		in      string
		ttl     time.Duration
		off     bool
		wantErr string
	}{
		{in: "cache_ttl 3s", ttl: 3 * time.Second},
		{in: "cache_ttl off", off: true},
		{in: "cache_ttl", wantErr: "missing value"},
		{in: "cache_ttl 0", wantErr: "positive duration or off"},
		{in: "cache_ttl soon", wantErr: "positive duration or off"},
		{in: "cache_ttl 3s 4s", wantErr: "takes one value"},
	} {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("engage_sso {\n\tsession {\n\t\t" + tt.in + "\n\t}\n}"))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error = %v; want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || time.Duration(a.Session.CacheTTL) != tt.ttl || a.Session.CacheOff != tt.off {
			t.Errorf("%q: ttl %v off %v err %v; want %v %v", tt.in, time.Duration(a.Session.CacheTTL), a.Session.CacheOff, err, tt.ttl, tt.off)
		}
	}
}
