package caddymodule

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/redis/go-redis/v9"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/internal/redistest"
)

// discardWriter is a ResponseWriter that costs nothing, so that benchmarks
// measure the handler rather than a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// benchRequest returns a typical browser request to the app and a function
// that restores the headers ServeHTTP changes, without allocating.
func benchRequest(b *testing.B, cookie string) (*http.Request, func()) {
	b.Helper()
	r := httptest.NewRequest(http.MethodGet, "/reports?week=12", nil)
	r.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0")
	r.Header.Set("Accept-Language", "en-GB,en;q=0.9")
	r, _ = withCaddyContext(r)
	cookies := []string{cookie}
	return r, func() {
		r.Header["Cookie"] = cookies
		delete(r.Header, "X-Engage-Identity")
	}
}

// BenchmarkAuthenticatedFastPath is a request with a valid session cookie
// and a warm token cache, through the whole ServeHTTP: with the memory
// store, with Redis behind a warm local session cache (the normal case),
// and with Redis asked on every request (cache_ttl 0), which shows what
// the local cache saves.
func BenchmarkAuthenticatedFastPath(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		e := newEnv(b, envConfig{})
		tok, _ := e.newSession(b, nil)
		benchFastPath(b, e, tok)
	})
	for _, tt := range []struct {
		name     string
		cacheTTL time.Duration
	}{{"redis-cached", defaultCacheTTL}, {"redis-uncached", 0}} {
		b.Run(tt.name, func(b *testing.B) {
			e := newEnv(b, envConfig{})
			tok, s := e.newSession(b, nil)
			rs, err := session.NewRedis(session.RedisOptions{
				Client: redis.NewClient(&redis.Options{Addr: redistest.Standalone(b)}),
				Prefix: "bench:",
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = rs.Close() })
			if err := rs.SaveSession(context.Background(), s, time.Hour); err != nil {
				b.Fatal(err)
			}
			e.app.store = rs
			e.app.sessions = newSessionCache(tt.cacheTTL, 1000)
			benchFastPath(b, e, tok)
		})
	}
}

func benchFastPath(b *testing.B, e *testEnv, tok string) {
	r, reset := benchRequest(b, "theme=dark; engage_sso="+tok+"; _ga=GA1.2.3")
	w := &discardWriter{h: http.Header{}}
	called := 0
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called++; return nil })

	reset()
	if err := e.h.ServeHTTP(w, r, next); err != nil || called != 1 {
		b.Fatalf("warm-up: ServeHTTP() = %v, next called %d times; want nil, 1", err, called)
	}
	b.ReportAllocs()
	for b.Loop() {
		reset()
		if err := e.h.ServeHTTP(w, r, next); err != nil {
			b.Fatal(err)
		}
	}
	if called != b.N+1 {
		b.Fatalf("next called %d times; want %d", called, b.N+1)
	}
}

// BenchmarkPlainNext is the baseline: the same request straight to next.
func BenchmarkPlainNext(b *testing.B) {
	r, reset := benchRequest(b, "theme=dark; engage_sso=x; _ga=GA1.2.3")
	w := &discardWriter{h: http.Header{}}
	called := 0
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { called++; return nil })
	b.ReportAllocs()
	for b.Loop() {
		reset()
		if err := next.ServeHTTP(w, r); err != nil {
			b.Fatal(err)
		}
	}
	if called != b.N {
		b.Fatalf("next called %d times; want %d", called, b.N)
	}
}
