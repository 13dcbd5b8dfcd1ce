package graph

import (
	"net/url"
	"strings"
)

// GroupsLinkClaim is the SAML attribute Azure AD sends instead of the groups
// claim when the user is in too many groups.
const GroupsLinkClaim = "http://schemas.microsoft.com/claims/groups.link"

// ParseGroupsLink parses the value of Azure AD's groups.link claim,
// https://graph.windows.net/{tenant-guid}/users/{user-oid}/getMemberObjects,
// and returns the tenant id and the user's object id, both in lower case.
// It also accepts the host graph.microsoft.com and a trailing slash; any
// other shape (another host or scheme, a query, ids that are not GUIDs)
// gives ok false.
//
// The caller should take the user's object id from the objectidentifier
// claim and use the link only as a cross-check.
func ParseGroupsLink(link string) (tenantID, objectID string, ok bool) {
	u, err := url.Parse(strings.TrimSpace(link))
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawPath != "" {
		return "", "", false
	}
	switch strings.ToLower(u.Host) {
	case "graph.windows.net", "graph.microsoft.com":
	default:
		return "", "", false
	}
	p := strings.TrimSuffix(u.Path, "/")
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if !strings.HasPrefix(p, "/") || len(parts) != 4 ||
		!strings.EqualFold(parts[1], "users") || !strings.EqualFold(parts[3], "getMemberObjects") ||
		!isGUID(parts[0]) || !isGUID(parts[2]) {
		return "", "", false
	}
	return strings.ToLower(parts[0]), strings.ToLower(parts[2]), true
}

// isGUID reports whether s has the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
// with hexadecimal digits of either case.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// hasControl reports whether s contains an ASCII control character.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
