package demoapp

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStorePersists: users written through the hook are in the file,
// survive a restart, and the file is replaced atomically, private to its
// owner, with no temporary file left behind.
func TestStorePersists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "users.json")
	f := newHookFixture(t, path)
	auth := "Bearer " + f.hookToken(t, "jit")
	status, body := f.call(t, "POST", "/hook/users", auth,
		`{"email":"ada@contoso.com","role":"agent","company":"contoso","external_id":"oid-1"}`, "Idempotency-Key", "k1")
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	var ada user
	if err := json.Unmarshal([]byte(body), &ada); err != nil {
		t.Fatal(err)
	}

	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("data file: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("data file mode = %v; want 0600", perm)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries; want only the data file", len(entries))
	}
	var file fileFormat
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("data file %s: %v", data, err)
	}
	if file.Version != storeVersion || len(file.Users) != 1 || file.Users[0].ID != ada.ID ||
		file.Users[0].CreatedBy != "jit" || !file.Users[0].CreatedAt.Equal(testNow) ||
		len(file.IdempotencyKeys) != 1 || file.IdempotencyKeys[0].UserID != ada.ID {
		t.Errorf("data file = %s; want ada, created by jit, and her key", data)
	}

	// A restart on the same file sees the user and remembers the key.
	h, err := f.newHandler(t, path)
	if err != nil {
		t.Fatalf("New on the saved file: %v", err)
	}
	f.srv.Config.Handler = h
	if status, body := f.call(t, "GET", "/hook/users/"+ada.ID, auth, ""); status != http.StatusOK || !strings.Contains(body, `"oid-1"`) {
		t.Errorf("GET after restart: %d %s", status, body)
	}
	status, body = f.call(t, "POST", "/hook/users", auth,
		`{"email":"ada@contoso.com","role":"agent","company":"contoso","external_id":"oid-1"}`, "Idempotency-Key", "k1")
	if status != http.StatusOK || !strings.Contains(body, ada.ID) {
		t.Errorf("replay after restart: %d %s; want 200 with %s", status, body, ada.ID)
	}
}

// TestStoreSaveFails: when the file cannot be written the change is not
// made and the hook answers 500.
func TestStoreSaveFails(t *testing.T) {
	t.Parallel()
	f := newHookFixture(t, filepath.Join(t.TempDir(), "missing-dir", "users.json"))
	auth := "Bearer " + f.hookToken(t, "jit")
	status, body := f.call(t, "POST", "/hook/users", auth, `{"email":"ada@contoso.com","role":"agent","company":"contoso"}`)
	if status != http.StatusInternalServerError || !strings.Contains(body, `"code":"internal"`) || strings.Contains(body, "missing-dir") {
		t.Errorf("create with unwritable file: %d %s; want 500 internal without detail", status, body)
	}
	if status, body := f.call(t, "GET", "/hook/users?company=contoso&email=ada@contoso.com", auth, ""); status != http.StatusOK ||
		!strings.Contains(body, `"users":[]`) {
		t.Errorf("lookup after a failed save: %d %s; want no user", status, body)
	}
}

func TestOpenStore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		wantErr string
		wantN   int
	}{
		{"memory", "", "", 0},
		{"missing file", filepath.Join(dir, "none.json"), "", 0},
		{"hand-made file", write("ok.json", `{"version":1,"users":[{"id":"u1","email":"a@b.co","role":"agent","company":"c","created_at":"2030-01-01T00:00:00Z","updated_at":"2030-01-01T00:00:00Z"}]}`), "", 1},
		{"not JSON", write("bad.json", `users: []`), "parsing users file", 0},
		{"other version", write("v2.json", `{"version":2,"users":[]}`), "version 2", 0},
		{"user without id", write("noid.json", `{"version":1,"users":[{"email":"a@b.co"}]}`), "without id", 0},
		{"repeated id", write("dup.json", `{"version":1,"users":[{"id":"u1"},{"id":"u1"}]}`), "repeated", 0},
		{"directory", dir, "reading users", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := openStore(tt.path, nil, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("openStore(%q) error = %v; want one mentioning %q", tt.path, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("openStore(%q): %v", tt.path, err)
			}
			if n := len(s.st.users); n != tt.wantN {
				t.Errorf("openStore(%q) has %d users; want %d", tt.path, n, tt.wantN)
			}
		})
	}
}
