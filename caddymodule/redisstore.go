package caddymodule

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

func init() {
	caddy.RegisterModule(RedisStore{})
}

// RedisStore keeps sessions, pending logins, the replay cache and shared
// keys in Redis (`store redis`), so that any number of Caddy instances
// behind a load balancer behave as one. It speaks to a single server, to a
// Sentinel-managed master (master_name set) or to a Cluster (several
// addresses, no master_name), through go-redis's UniversalClient.
type RedisStore struct {
	// Addresses are host:port pairs: one for a single server; the
	// sentinels' addresses when master_name is set; the cluster nodes when
	// there are several and no master_name. Default "127.0.0.1:6379".
	Addresses []string `json:"addresses,omitempty"`

	// MasterName is the Sentinel master name. Setting it selects Sentinel.
	MasterName string `json:"master_name,omitempty"`

	// Username and Password authenticate to Redis (ACL user, or only a
	// password for requirepass). Use {env.*} placeholders for secrets.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`

	// SentinelUsername and SentinelPassword authenticate to the sentinels,
	// when they require it.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// DB is the database number (not with Cluster). Default 0.
	DB int `json:"db,omitempty"`

	// Prefix starts every key, so that several deployments can share a
	// Redis. Default "engage_sso:".
	Prefix string `json:"prefix,omitempty"`

	// TLS, when set, connects with TLS.
	TLS *TLSFiles `json:"tls,omitempty"`

	// DialTimeout bounds connecting. Default 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// ReadTimeout and WriteTimeout bound each command. Default 3s. Each
	// store call as a whole is bounded by dial_timeout + write_timeout +
	// read_timeout: while Redis is unreachable, a request waits at most
	// that long before its 503. Keep them short.
	ReadTimeout  caddy.Duration `json:"read_timeout,omitempty"`
	WriteTimeout caddy.Duration `json:"write_timeout,omitempty"`

	// PoolSize is the number of connections per node. Default: go-redis's
	// (10 per CPU).
	PoolSize int `json:"pool_size,omitempty"`

	poolKey string
}

// TLSFiles configures a TLS client connection (to Redis, to the user hook)
// from PEM files.
type TLSFiles struct {
	// CAFile is a PEM file of CAs to trust instead of the system's.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are a client certificate and its key (PEM).
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `json:"server_name,omitempty"`
}

// redisPool shares one client per distinct configuration across config
// reloads.
var redisPool = caddy.NewUsagePool()

type pooledRedis struct{ *session.Redis }

func (p pooledRedis) Destruct() error { return p.Close() }

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "engage_sso.stores.redis",
		New: func() caddy.Module { return new(RedisStore) },
	}
}

// Provision expands placeholders and applies defaults.
func (s *RedisStore) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	for i, a := range s.Addresses {
		s.Addresses[i] = repl.ReplaceKnown(a, "")
	}
	for _, p := range []*string{&s.MasterName, &s.Username, &s.Password, &s.SentinelUsername, &s.SentinelPassword, &s.Prefix} {
		*p = repl.ReplaceKnown(*p, "")
	}
	if s.TLS != nil {
		for _, p := range []*string{&s.TLS.CAFile, &s.TLS.CertFile, &s.TLS.KeyFile, &s.TLS.ServerName} {
			*p = repl.ReplaceKnown(*p, "")
		}
	}
	if len(s.Addresses) == 0 {
		s.Addresses = []string{"127.0.0.1:6379"}
	}
	if s.Prefix == "" {
		s.Prefix = "engage_sso:"
	}
	if s.DialTimeout == 0 {
		s.DialTimeout = caddy.Duration(5 * time.Second)
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = caddy.Duration(3 * time.Second)
	}
	if s.WriteTimeout == 0 {
		s.WriteTimeout = caddy.Duration(3 * time.Second)
	}
	key, err := json.Marshal(s)
	if err != nil {
		return err
	}
	s.poolKey = "redis/" + string(key)
	return nil
}

// Validate checks the configuration without connecting.
func (s *RedisStore) Validate() error {
	if s.DB != 0 && s.MasterName == "" && len(s.Addresses) > 1 {
		return errors.New("redis store: db must be 0 with a Cluster (several addresses and no master_name)")
	}
	if s.DB < 0 || s.PoolSize < 0 {
		return errors.New("redis store: db and pool_size must not be negative")
	}
	if s.TLS != nil && (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		return errors.New("redis store: tls cert_file and key_file go together")
	}
	return nil
}

// OpenStore implements StoreModule. It does not wait for Redis: an
// unreachable Redis is reported per request (503) and by /sso/healthz, and
// service resumes when it is back.
func (s *RedisStore) OpenStore(caddy.Context) (session.Store, error) {
	v, _, err := redisPool.LoadOrNew(s.poolKey, func() (caddy.Destructor, error) {
		opts := &redis.UniversalOptions{
			Addrs:            s.Addresses,
			MasterName:       s.MasterName,
			Username:         s.Username,
			Password:         s.Password,
			SentinelUsername: s.SentinelUsername,
			SentinelPassword: s.SentinelPassword,
			DB:               s.DB,
			DialTimeout:      time.Duration(s.DialTimeout),
			ReadTimeout:      time.Duration(s.ReadTimeout),
			WriteTimeout:     time.Duration(s.WriteTimeout),
			PoolSize:         s.PoolSize,
			// Honour the per-call deadline the app sets (CallTimeout).
			ContextTimeoutEnabled: true,
		}
		if s.TLS != nil {
			tc, err := s.TLS.config()
			if err != nil {
				return nil, err
			}
			opts.TLSConfig = tc
		}
		st, err := session.NewRedis(session.RedisOptions{Client: redis.NewUniversalClient(opts), Prefix: s.Prefix})
		if err != nil {
			return nil, err
		}
		return pooledRedis{st}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	return v.(pooledRedis).Redis, nil
}

func (t *TLSFiles) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis tls ca_file %s: no PEM certificate in it", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// CallTimeout is the longest a store call may take: connecting, sending
// and reading once. The app gives every call this deadline, so go-redis's
// retries and reconnects cannot hold a request longer while Redis is down.
func (s *RedisStore) CallTimeout() time.Duration {
	return time.Duration(s.DialTimeout + s.WriteTimeout + s.ReadTimeout)
}

// Cleanup releases this config's use of the shared client.
func (s *RedisStore) Cleanup() error {
	_, err := redisPool.Delete(s.poolKey)
	return err
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	store redis {
//		address           <host:port>...
//		master_name       <name>
//		username          <user>
//		password          <password>
//		sentinel_username <user>
//		sentinel_password <password>
//		db                <n>
//		prefix            <prefix>
//		tls {
//			ca_file     <path>
//			cert_file   <path>
//			key_file    <path>
//			server_name <name>
//		}
//		dial_timeout  <duration>
//		read_timeout  <duration>
//		write_timeout <duration>
//		pool_size     <n>
//	}
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // backend name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := settings{}
	for d.NextBlock(0) {
		key := d.Val()
		if err := seen.once(d, "redis."+key, key != "address"); err != nil {
			return err
		}
		var err error
		switch key {
		case "address", "addresses":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			s.Addresses = append(s.Addresses, args...)
		case "master_name":
			s.MasterName, err = oneArg(d)
		case "username":
			s.Username, err = oneArg(d)
		case "password":
			s.Password, err = oneArg(d)
		case "sentinel_username":
			s.SentinelUsername, err = oneArg(d)
		case "sentinel_password":
			s.SentinelPassword, err = oneArg(d)
		case "db":
			var v string
			if v, err = oneArg(d); err == nil {
				if _, scanErr := fmt.Sscanf(v, "%d", &s.DB); scanErr != nil || s.DB < 0 {
					err = d.Errf("db: want a database number, got %q", v)
				}
			}
		case "prefix":
			s.Prefix, err = oneArg(d)
		case "tls":
			s.TLS = new(TLSFiles)
			err = s.TLS.unmarshal(d)
		case "dial_timeout":
			s.DialTimeout, err = durationArg(d)
		case "read_timeout":
			s.ReadTimeout, err = durationArg(d)
		case "write_timeout":
			s.WriteTimeout, err = durationArg(d)
		case "pool_size":
			s.PoolSize, err = intArg(d)
		default:
			err = d.Errf("unknown redis store setting %q (want address, master_name, username, password, sentinel_username, sentinel_password, db, prefix, tls, dial_timeout, read_timeout, write_timeout or pool_size)", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *TLSFiles) unmarshal(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var dst *string
		switch d.Val() {
		case "ca_file":
			dst = &t.CAFile
		case "cert_file":
			dst = &t.CertFile
		case "key_file":
			dst = &t.KeyFile
		case "server_name":
			dst = &t.ServerName
		default:
			return d.Errf("unknown redis tls setting %q (want ca_file, cert_file, key_file or server_name)", d.Val())
		}
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		*dst = v
	}
	return nil
}

// Interface guards.
var (
	_ StoreModule           = (*RedisStore)(nil)
	_ caddy.Provisioner     = (*RedisStore)(nil)
	_ caddy.Validator       = (*RedisStore)(nil)
	_ caddy.CleanerUpper    = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
)
