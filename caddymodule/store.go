package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"

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
	// logins, remembered assertion IDs and cached values (group lists read
	// from Microsoft Graph), so that a flood of sign-in
	// attempts cannot exhaust memory; past it new sign-ins get a 503.
	// Default 1,000,000.
	MaxEntries int `json:"max_entries,omitempty"`

	// Persist, when true (the default), keeps the store's blobs — the
	// shared signing keys, the generated SAML SP key pair and dynamic
	// configuration — in Caddy's storage
	// (its data directory unless configured otherwise), so they survive a
	// restart. Sessions are never persisted: a restart signs everybody out.
	Persist *bool `json:"persist,omitempty"`

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
func (m *MemoryStore) OpenStore(ctx caddy.Context) (session.Store, error) {
	v, _, err := memoryPool.LoadOrNew(m.poolKey, func() (caddy.Destructor, error) {
		return pooledMemory{session.NewMemory(session.MemoryOptions{MaxEntries: m.MaxEntries})}, nil
	})
	if err != nil {
		return nil, err
	}
	mem := v.(pooledMemory).Memory
	if m.Persist != nil && !*m.Persist {
		return mem, nil
	}
	st := caddyStorage(ctx)
	if st == nil {
		return mem, nil
	}
	return &persistedMemory{Memory: mem, storage: st}, nil
}

// caddyStorage returns the config's storage, or nil for a context made
// without a Caddy config (as in unit tests), whose Storage method panics.
func caddyStorage(ctx caddy.Context) (st certmagic.Storage) {
	defer func() {
		if recover() != nil {
			st = nil
		}
	}()
	return ctx.Storage()
}

// persistedMemory is the memory store with its blobs written through to
// Caddy's storage and read back from it after a restart.
type persistedMemory struct {
	*session.Memory
	storage certmagic.Storage
}

const blobStoragePrefix = "engage_sso/blobs/"

// GetBlob returns the blob from memory, loading it from storage first if
// this process has not seen it yet.
func (p *persistedMemory) GetBlob(ctx context.Context, name string) ([]byte, error) {
	b, err := p.Memory.GetBlob(ctx, name)
	if !errors.Is(err, session.ErrNotFound) {
		return b, err
	}
	data, err := p.storage.Load(ctx, blobStoragePrefix+name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, session.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading blob %q from Caddy storage: %w", name, err)
	}
	if _, err := p.Memory.CompareAndSwapBlob(ctx, name, nil, data); err != nil {
		return nil, err
	}
	return p.Memory.GetBlob(ctx, name)
}

// PutBlob writes the blob to storage, then to memory.
func (p *persistedMemory) PutBlob(ctx context.Context, name string, data []byte) error {
	if err := p.storage.Store(ctx, blobStoragePrefix+name, data); err != nil {
		return fmt.Errorf("saving blob %q to Caddy storage: %w", name, err)
	}
	return p.Memory.PutBlob(ctx, name, data)
}

// CompareAndSwapBlob swaps in memory (after loading the stored value) and
// writes the new value through to storage.
func (p *persistedMemory) CompareAndSwapBlob(ctx context.Context, name string, old, new []byte) (bool, error) {
	if _, err := p.GetBlob(ctx, name); err != nil && !errors.Is(err, session.ErrNotFound) {
		return false, err
	}
	swapped, err := p.Memory.CompareAndSwapBlob(ctx, name, old, new)
	if err != nil || !swapped {
		return swapped, err
	}
	if err := p.storage.Store(ctx, blobStoragePrefix+name, new); err != nil {
		return false, fmt.Errorf("saving blob %q to Caddy storage: %w", name, err)
	}
	return true, nil
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
//		persist     on|off
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
		case "persist":
			if m.Persist != nil {
				return d.Errf("persist: set twice")
			}
			b, err := onOffArg(d)
			if err != nil {
				return err
			}
			m.Persist = &b
		default:
			return d.Errf("unknown memory store setting %q (want max_entries or persist)", d.Val())
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
