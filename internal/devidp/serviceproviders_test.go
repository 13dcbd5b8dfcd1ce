package devidp

import (
	"context"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/crewjam/saml"
	"go.uber.org/zap/zaptest"
)

// spMetadataXML returns the metadata of an SP with the given entity ID.
func spMetadataXML(t *testing.T, entityID string) string {
	t.Helper()
	sp := saml.ServiceProvider{
		EntityID:    entityID,
		MetadataURL: mustParseURL(t, entityID),
		AcsURL:      mustParseURL(t, "https://sp.example/acs"),
	}
	buf, err := xml.Marshal(sp.Metadata())
	if err != nil {
		t.Fatalf("marshal SP metadata: %v", err)
	}
	return string(buf)
}

func TestSPRegistryFetch(t *testing.T) {
	t.Parallel()
	good := spMetadataXML(t, "https://sp.example/metadata")
	tests := []struct {
		name    string
		status  int
		body    string
		wantErr string // "" when the fetch succeeds
	}{
		{"sp metadata", http.StatusOK, good, ""},
		{"not found", http.StatusNotFound, "", "status 404"},
		{"not xml", http.StatusOK, "hello", "parse"},
		{"idp metadata", http.StatusOK, `<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/"><IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"></IDPSSODescriptor></EntityDescriptor>`, "no SPSSODescriptor"},
		{"no entity id", http.StatusOK, strings.Replace(good, `entityID="https://sp.example/metadata"`, "", 1), "no entityID"},
		{"too large", http.StatusOK, good + strings.Repeat(" ", maxMetadataSize), "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			}))
			defer ts.Close()
			g := newSPRegistry(ts.Client(), zaptest.NewLogger(t), []string{ts.URL})
			md, err := g.lookup(context.Background(), "https://sp.example/metadata")
			if tt.wantErr == "" {
				if err != nil || md == nil {
					t.Fatalf("lookup() = %v, %v; want the metadata", md, err)
				}
				return
			}
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("lookup() error = %v; want os.ErrNotExist", err)
			}
			entries := g.snapshot()
			if len(entries) != 1 || entries[0].Err == nil || !strings.Contains(entries[0].Err.Error(), tt.wantErr) {
				t.Errorf("snapshot() = %+v; want an error containing %q", entries, tt.wantErr)
			}
		})
	}
}

func TestSPRegistryKeepsMetadataWhenSPIsDown(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	up := true
	body := spMetadataXML(t, "https://sp.example/metadata")
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if !up {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer ts.Close()
	g := newSPRegistry(ts.Client(), zaptest.NewLogger(t), []string{ts.URL})
	ctx := context.Background()
	if _, err := g.lookup(ctx, "https://sp.example/metadata"); err != nil {
		t.Fatalf("lookup() error: %v", err)
	}
	mu.Lock()
	up = false
	mu.Unlock()
	g.refresh(ctx, "https://sp.example/metadata")
	md, err := g.lookup(ctx, "https://sp.example/metadata")
	if err != nil || md == nil {
		t.Errorf("lookup() after a failed refresh = %v, %v; want the earlier metadata", md, err)
	}
	if e := g.snapshot()[0]; e.Err == nil {
		t.Errorf("snapshot() after a failed refresh has no error")
	}
}

func TestSPRegistryRespectsContext(t *testing.T) {
	t.Parallel()
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-block }))
	defer ts.Close()
	defer close(block)
	g := newSPRegistry(ts.Client(), zaptest.NewLogger(t), []string{ts.URL})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.lookup(ctx, "https://sp.example/metadata"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lookup() with a cancelled context error = %v; want os.ErrNotExist", err)
	}
	if e := g.snapshot()[0]; !errors.Is(e.Err, context.Canceled) {
		t.Errorf("fetch error = %v; want context.Canceled", e.Err)
	}
}
