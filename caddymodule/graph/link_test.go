package graph

import "testing"

// TestParseGroupsLink checks the parsing of Azure AD's groups.link claim.
func TestParseGroupsLink(t *testing.T) {
	t.Parallel()
	const (
		tid = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		oid = "4a9b6c1d-2e3f-4051-8293-a4b5c6d7e8f9"
	)
	tests := []struct {
		link string
		ok   bool
	}{
		{"https://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects", true},
		{"https://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects/", true},
		{"https://graph.microsoft.com/" + tid + "/users/" + oid + "/getMemberObjects", true},
		{"https://GRAPH.windows.net/72F988BF-86F1-41AF-91AB-2D7CD011DB47/Users/4A9B6C1D-2E3F-4051-8293-A4B5C6D7E8F9/getmemberobjects", true},
		{"  https://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects\n", true},
		{"http://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"https://evil.example/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"https://graph.windows.net.evil.example/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"https://graph.windows.net:8443/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"https://u@graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"https://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects?api-version=1.6", false},
		{"https://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects#x", false},
		{"https://graph.windows.net/" + tid + "/groups/" + oid + "/getMemberObjects", false},
		{"https://graph.windows.net/" + tid + "/users/" + oid + "/memberOf", false},
		{"https://graph.windows.net/contoso.com/users/" + oid + "/getMemberObjects", false},
		{"https://graph.windows.net/" + tid + "/users/user@contoso.com/getMemberObjects", false},
		{"https://graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects//", false},
		{"https://graph.windows.net/" + tid + "/users/" + oid, false},
		{"https://graph.windows.net/v1.0/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"https://graph.windows.net/" + tid + "/users/" + oid + "%2FgetMemberObjects", false},
		{"graph.windows.net/" + tid + "/users/" + oid + "/getMemberObjects", false},
		{"", false},
		{"%zz", false},
	}
	for _, tt := range tests {
		gotT, gotO, ok := ParseGroupsLink(tt.link)
		if ok != tt.ok {
			t.Errorf("ParseGroupsLink(%q) ok = %v, want %v", tt.link, ok, tt.ok)
			continue
		}
		if ok && (gotT != tid || gotO != oid) {
			t.Errorf("ParseGroupsLink(%q) = %q, %q; want %q, %q", tt.link, gotT, gotO, tid, oid)
		}
		if !ok && (gotT != "" || gotO != "") {
			t.Errorf("ParseGroupsLink(%q) = %q, %q with ok false", tt.link, gotT, gotO)
		}
	}
}
