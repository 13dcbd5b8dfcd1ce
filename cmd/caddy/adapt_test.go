package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/adapt")

// TestAdaptGolden adapts the demo Caddyfile and every example with the
// Caddyfile adapter, as `caddy adapt` does, and compares the JSON with the
// golden files in testdata/adapt. Run with -update after a deliberate change.
func TestAdaptGolden(t *testing.T) {
	files := []string{"../../Caddyfile"}
	examples, err := filepath.Glob("../../examples/*.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) == 0 {
		t.Fatal("no example Caddyfiles found in ../../examples")
	}
	files = append(files, examples...)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".Caddyfile")
		if filepath.Dir(f) != "../../examples" {
			name = "demo"
		}
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(src, map[string]any{"filename": f})
			if err != nil {
				t.Fatalf("adapting %s: %v", f, err)
			}
			for _, w := range warnings {
				t.Errorf("adapting %s: warning: %s", f, w.String())
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "\t"); err != nil {
				t.Fatal(err)
			}
			pretty.WriteByte('\n')
			golden := filepath.Join("testdata", "adapt", name+".json")
			if *update {
				if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run go test ./cmd/caddy -update to create it): %v", err)
			}
			if !bytes.Equal(pretty.Bytes(), want) {
				t.Errorf("adapting %s gives different JSON than %s (run with -update if intended):\n%s", f, golden, pretty.String())
			}
		})
	}
}
