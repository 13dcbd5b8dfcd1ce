package caddymodule

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/engage-sso/engage-sso/caddymodule/session"
)

func init() {
	caddy.RegisterModule(MemoryStore{})
}

// MemoryStore is the in-memory session store (`store memory`), the default.
// It suits a single Caddy instance: sessions survive config reloads but not
// a restart, and are not shared with other instances.
type MemoryStore struct {
	// MaxEntries bounds the number of sessions, and separately of pending
	// logins and remembered assertion IDs, so that a flood of sign-in
	// attempts cannot exhaust memory; past it new sign-ins get a 503.
	// Default 1,000,000.
	MaxEntries int `json:"max_entries,omitempty"`

	poolKey string
}

// memoryPool keeps one memory store per process, shared across config
// reloads so that a reload does not sign everybody out.
var memoryPool = caddy.NewUsagePool()

type pooledMemory struct{ *session.Memory }

func (p pooledMemory) Destruct() error { return p.Close() }

// CaddyModule returns the Caddy module information.
func (MemoryStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "engage_sso.stores.memory",
		New: func() caddy.Module { return new(MemoryStore) },
	}
}

// Provision implements caddy.Provisioner.
//
// Configs with the same max_entries share one store, so a reload keeps
// everyone signed in; changing max_entries starts a new, empty store.
func (m *MemoryStore) Provision(caddy.Context) error {
	m.poolKey = fmt.Sprintf("memory/%d", m.MaxEntries)
	return nil
}

// OpenStore implements StoreModule.
func (m *MemoryStore) OpenStore(caddy.Context) (session.Store, error) {
	v, _, err := memoryPool.LoadOrNew(m.poolKey, func() (caddy.Destructor, error) {
		return pooledMemory{session.NewMemory(session.MemoryOptions{MaxEntries: m.MaxEntries})}, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(pooledMemory).Memory, nil
}

// Cleanup releases this config's use of the shared store.
func (m *MemoryStore) Cleanup() error {
	_, err := memoryPool.Delete(m.poolKey)
	return err
}

// UnmarshalCaddyfile sets up the store from Caddyfile tokens:
//
//	store memory {
//		max_entries <n>
//	}
func (m *MemoryStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // store backend name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "max_entries":
			if m.MaxEntries != 0 {
				return d.Errf("max_entries: set twice")
			}
			n, err := intArg(d)
			if err != nil {
				return err
			}
			m.MaxEntries = n
		default:
			return d.Errf("unknown memory store setting %q (want max_entries)", d.Val())
		}
	}
	return nil
}

// Interface guards.
var (
	_ StoreModule           = (*MemoryStore)(nil)
	_ caddy.Provisioner     = (*MemoryStore)(nil)
	_ caddy.CleanerUpper    = (*MemoryStore)(nil)
	_ caddyfile.Unmarshaler = (*MemoryStore)(nil)
)
