package caddymodule

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/engage-sso/engage-sso/caddymodule/session"
	"github.com/engage-sso/engage-sso/internal/redistest"
)

func TestRedisStoreCaddyfile(t *testing.T) {
	in := `redis {
		address 10.0.0.1:26379 10.0.0.2:26379
		address 10.0.0.3:26379
		master_name engage
		username engage-sso
		password {env.REDIS_PASSWORD}
		sentinel_password {env.SENTINEL_PASSWORD}
		db 2
		prefix eng:
		tls {
			ca_file /etc/redis/ca.pem
			server_name redis.internal
		}
		dial_timeout 2s
		read_timeout 500ms
		write_timeout 500ms
		pool_size 32
	}`
	var s RedisStore
	if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatalf("UnmarshalCaddyfile() = %v", err)
	}
	want := RedisStore{
		Addresses:        []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"},
		MasterName:       "engage",
		Username:         "engage-sso",
		Password:         "{env.REDIS_PASSWORD}",
		SentinelPassword: "{env.SENTINEL_PASSWORD}",
		DB:               2,
		Prefix:           "eng:",
		TLS:              &TLSFiles{CAFile: "/etc/redis/ca.pem", ServerName: "redis.internal"},
		DialTimeout:      caddy.Duration(2 * time.Second),
		ReadTimeout:      caddy.Duration(500 * time.Millisecond),
		WriteTimeout:     caddy.Duration(500 * time.Millisecond),
		PoolSize:         32,
	}
	got, _ := json.Marshal(s)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("UnmarshalCaddyfile() =\n%s\nwant\n%s", got, exp)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestRedisStoreCaddyfileErrors(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"redis extra", "wrong argument count"},
		{"redis {\n\taddres x\n}", `unknown redis store setting "addres"`},
		{"redis {\n\tdb x\n}", "want a database number"},
		{"redis {\n\tdb -1\n}", "want a database number"},
		{"redis {\n\tpool_size 0\n}", "positive whole number"},
		{"redis {\n\tread_timeout soon\n}", "invalid duration"},
		{"redis {\n\tpassword a\n\tpassword b\n}", "redis.password is set twice"},
		{"redis {\n\ttls {\n\t\tcafile x\n\t}\n}", `unknown redis tls setting "cafile"`},
	} {
		var s RedisStore
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("UnmarshalCaddyfile(%q) = %v; want an error containing %q", tt.in, err, tt.want)
		}
	}
}

func TestRedisStoreValidate(t *testing.T) {
	for name, s := range map[string]RedisStore{
		"db with cluster":    {Addresses: []string{"a:1", "b:1"}, DB: 1},
		"cert without key":   {TLS: &TLSFiles{CertFile: "c.pem"}},
		"negative pool size": {PoolSize: -1},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%s) = nil; want an error", name)
		}
	}
	ok := RedisStore{Addresses: []string{"a:1"}, MasterName: "m", DB: 3}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(sentinel with db) = %v", err)
	}
}

func TestRedisStoreProvisionDefaultsAndPlaceholders(t *testing.T) {
	t.Setenv("ENGAGE_TEST_REDIS_PW", "s3cret")
	s := RedisStore{Password: "{env.ENGAGE_TEST_REDIS_PW}"}
	if err := s.Provision(caddy.Context{}); err != nil {
		t.Fatal(err)
	}
	if s.Password != "s3cret" || len(s.Addresses) != 1 || s.Addresses[0] != "127.0.0.1:6379" ||
		s.Prefix != "engage_sso:" || s.ReadTimeout != caddy.Duration(3*time.Second) {
		t.Errorf("after Provision: %+v", s)
	}
}

// TestRedisStoreModuleRealRedis opens the module's store against a real
// redis-server started for the test, and checks that two configs with the
// same settings share one client (a reload) and that it is closed when the
// last one is cleaned up.
func TestRedisStoreModuleRealRedis(t *testing.T) {
	addr := redistest.Standalone(t)
	open := func() (*RedisStore, session.Store) {
		s := &RedisStore{Addresses: []string{addr}, Prefix: "module-test:"}
		if err := s.Provision(caddy.Context{}); err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		st, err := s.OpenStore(caddy.Context{})
		if err != nil {
			t.Fatalf("OpenStore() = %v", err)
		}
		return s, st
	}
	modA, a := open()
	modB, b := open()
	if a != b {
		t.Error("two configs with the same settings got different stores; a reload would drop connections")
	}
	ctx := context.Background()
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	sess := &session.Session{ID: "module-sid", UserID: "u1", Email: "a@contoso.com", Role: "agent",
		Company: "contoso", Provider: "contoso", CreatedAt: time.Now(), LastSeen: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := a.SaveSession(ctx, sess, time.Minute); err != nil {
		t.Fatalf("SaveSession() = %v", err)
	}
	if got, err := b.LoadSession(ctx, "module-sid"); err != nil || got.Email != sess.Email {
		t.Fatalf("LoadSession() = %+v, %v", got, err)
	}
	if err := modA.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); err != nil {
		t.Errorf("after one of two configs was cleaned up, Ping() = %v; want the client still open", err)
	}
	if err := modB.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); err == nil {
		t.Error("after the last config was cleaned up, Ping() = nil; want the client closed")
	}
}
