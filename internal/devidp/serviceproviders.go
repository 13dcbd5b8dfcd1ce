package devidp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"go.uber.org/zap"
)

// metadataFetchTimeout bounds one fetch of service provider metadata,
// whatever the HTTP client's own timeout.
const metadataFetchTimeout = 10 * time.Second

// maxMetadataSize is the largest service provider metadata document read.
const maxMetadataSize = 1 << 20

// spEntry is what is known about the service provider whose metadata is
// published at one configured URL.
type spEntry struct {
	URL string
	// Metadata is from the last successful fetch, or nil if there was none.
	Metadata *saml.EntityDescriptor
	// Err is the error of the last fetch, or nil if it succeeded.
	Err error
}

// spRegistry knows the service providers by their metadata, which it
// fetches from the configured URLs lazily: on the first request that needs
// it, and again when a request names an entity ID or an assertion consumer
// service that the metadata it has does not list. That is how an Azure
// admin would enter an application's Identifier and Reply URL, with the
// difference that a changed SP is picked up without anyone's help.
type spRegistry struct {
	client *http.Client
	log    *zap.Logger
	urls   []string

	// fetchMu serialises fetches, so that a burst of requests from an
	// unknown SP fetches each document once at a time.
	fetchMu sync.Mutex

	mu      sync.RWMutex
	entries map[string]spEntry // by URL
}

func newSPRegistry(client *http.Client, log *zap.Logger, urls []string) *spRegistry {
	return &spRegistry{
		client:  client,
		log:     log,
		urls:    urls,
		entries: make(map[string]spEntry, len(urls)),
	}
}

// lookup returns the metadata of the service provider with the given
// entity ID. If none of the metadata fetched so far has it, all the URLs
// are fetched again. It returns an error matching os.ErrNotExist if the SP
// is still unknown, as saml.ServiceProviderProvider requires.
func (g *spRegistry) lookup(ctx context.Context, entityID string) (*saml.EntityDescriptor, error) {
	if md := g.find(entityID); md != nil {
		return md, nil
	}
	g.fetch(ctx, g.urls)
	if md := g.find(entityID); md != nil {
		return md, nil
	}
	return nil, fmt.Errorf("service provider %q: %w", entityID, os.ErrNotExist)
}

// refresh fetches the metadata of the service provider with the given
// entity ID again, or all of them if it is unknown.
func (g *spRegistry) refresh(ctx context.Context, entityID string) {
	urls := g.urls
	g.mu.RLock()
	for _, u := range g.urls {
		if e := g.entries[u]; e.Metadata != nil && e.Metadata.EntityID == entityID {
			urls = []string{u}
			break
		}
	}
	g.mu.RUnlock()
	g.fetch(ctx, urls)
}

// list returns what is known about every configured URL, in configuration
// order, first fetching the metadata that has never been fetched
// successfully.
func (g *spRegistry) list(ctx context.Context) []spEntry {
	var missing []string
	g.mu.RLock()
	for _, u := range g.urls {
		if g.entries[u].Metadata == nil {
			missing = append(missing, u)
		}
	}
	g.mu.RUnlock()
	if len(missing) > 0 {
		g.fetch(ctx, missing)
	}
	return g.snapshot()
}

// snapshot returns what is known about every configured URL, in
// configuration order, without fetching anything.
func (g *spRegistry) snapshot() []spEntry {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]spEntry, 0, len(g.urls))
	for _, u := range g.urls {
		e := g.entries[u]
		e.URL = u
		out = append(out, e)
	}
	return out
}

// find returns the metadata with the given entity ID, in the first
// configured URL that has it, or nil.
func (g *spRegistry) find(entityID string) *saml.EntityDescriptor {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, u := range g.urls {
		if md := g.entries[u].Metadata; md != nil && md.EntityID == entityID {
			return md
		}
	}
	return nil
}

// fetch fetches the metadata at urls concurrently and records the results.
// A failed fetch keeps the metadata fetched before, if any: a service
// provider that is restarting does not become unknown.
func (g *spRegistry) fetch(ctx context.Context, urls []string) {
	g.fetchMu.Lock()
	defer g.fetchMu.Unlock()

	results := make([]spEntry, len(urls))
	var wg sync.WaitGroup
	for i, u := range urls {
		wg.Go(func() {
			md, err := g.fetchOne(ctx, u)
			results[i] = spEntry{URL: u, Metadata: md, Err: err}
		})
	}
	wg.Wait()

	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range results {
		if r.Err != nil {
			g.log.Warn("cannot fetch service provider metadata", zap.String("url", r.URL), zap.Error(r.Err))
			prev := g.entries[r.URL]
			prev.Err = r.Err
			g.entries[r.URL] = prev
			continue
		}
		g.log.Info("fetched service provider metadata", zap.String("url", r.URL), zap.String("entity_id", r.Metadata.EntityID))
		g.entries[r.URL] = r
	}
}

// fetchOne fetches and parses the service provider metadata at u.
func (g *spRegistry) fetchOne(ctx context.Context, u string) (*saml.EntityDescriptor, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metadata %s: status %s", u, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch metadata %s: %w", u, err)
	}
	if len(data) > maxMetadataSize {
		return nil, fmt.Errorf("fetch metadata %s: larger than %d bytes", u, maxMetadataSize)
	}
	md, err := parseSPMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", u, err)
	}
	return md, nil
}

// parseSPMetadata parses an EntityDescriptor with an SPSSODescriptor.
func parseSPMetadata(data []byte) (*saml.EntityDescriptor, error) {
	md, err := samlsp.ParseMetadata(data)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	switch {
	case md.EntityID == "":
		return nil, errors.New("no entityID")
	case len(md.SPSSODescriptors) == 0:
		return nil, errors.New("no SPSSODescriptor")
	}
	return md, nil
}
