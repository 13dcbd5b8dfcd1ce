package hookcheck

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/engage-sso/engage-sso/caddymodule/token"
)

// errNeeds is the error of a check whose prerequisite failed.
func errNeeds(what string) error { return fmt.Errorf("not run: needs %s, which failed", what) }

// lookup is a GET /users request that must fail authentication.
func (s *suite) lookup(ctx context.Context, a auth) (*response, error) {
	q := url.Values{"company": {s.target.Company}, "email": {"nobody." + s.tag + "@hookcheck.example.com"}}
	return s.do(ctx, http.MethodGet, "/users", q, nil, a)
}

func checkNoToken(ctx context.Context, s *suite) error {
	resp, err := s.lookup(ctx, noAuth)
	if err != nil {
		return err
	}
	return resp.wantError("unauthorized", http.StatusUnauthorized)
}

func checkMalformedToken(ctx context.Context, s *suite) error {
	for _, a := range []auth{bearer("not-a-jwt"), bearer("e30.e30."), {header: "Basic aG9va2NoZWNrOnB3"}} {
		resp, err := s.lookup(ctx, a)
		if err != nil {
			return err
		}
		if err := resp.wantError("unauthorized", http.StatusUnauthorized); err != nil {
			return fmt.Errorf("with header Authorization: %q: %w", a.header, err)
		}
	}
	return nil
}

// checkForeignKey sends a token with the claims of a valid one, signed by a
// key the hook has never seen.
func checkForeignKey(ctx context.Context, s *suite) error {
	valid, err := s.target.Token(ctx)
	if err != nil {
		return fmt.Errorf("getting a bearer token: %w", err)
	}
	var claims struct {
		Iss string `json:"iss"`
		Aud any    `json:"aud"`
		Sub string `json:"sub"`
	}
	parts := strings.Split(valid, ".")
	if len(parts) != 3 {
		return fmt.Errorf("the target's token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &claims) != nil {
		return fmt.Errorf("the target's token has no readable claims")
	}
	aud, _ := claims.Aud.(string)
	if list, ok := claims.Aud.([]any); ok && len(list) > 0 {
		aud, _ = list[0].(string)
	}
	key, err := token.GenerateKey(s.target.Rand, time.Now())
	if err != nil {
		return err
	}
	m := token.Minter{Issuer: claims.Iss, Keys: token.NewKeySet(key)}
	forged, err := m.MintAudience(aud, claims.Sub+"-forged", time.Minute)
	if err != nil {
		return fmt.Errorf("minting a token with an unknown key: %w", err)
	}
	resp, err := s.lookup(ctx, bearer(forged))
	if err != nil {
		return err
	}
	return resp.wantError("unauthorized", http.StatusUnauthorized)
}

func checkWrongAudience(ctx context.Context, s *suite) error {
	tok, err := s.target.TokenForAudience(ctx, "engage")
	if err != nil {
		return fmt.Errorf("getting a token for audience engage: %w", err)
	}
	resp, err := s.lookup(ctx, bearer(tok))
	if err != nil {
		return err
	}
	return resp.wantError("unauthorized", http.StatusUnauthorized)
}

// newUser returns the create body of a test user called name.
func (s *suite) newUser(name, company, role string) (map[string]any, error) {
	oid, err := s.randomUUID()
	if err != nil {
		return nil, err
	}
	given := strings.ToUpper(name[:1]) + name[1:]
	return map[string]any{
		"email":        given + "." + s.tag + "@HookCheck.example.com",
		"given_name":   given,
		"family_name":  "Hookcheck",
		"display_name": given + " Hookcheck",
		"role":         role,
		"active":       true,
		"company":      company,
		"external_id":  oid,
		"provider":     "hookcheck",
	}, nil
}

// create posts body with the given Idempotency-Key ("" for none) and
// registers any user made for deletion at the end.
func (s *suite) create(ctx context.Context, body map[string]any, key string) (*response, *user, error) {
	var header []string
	if key != "" {
		header = []string{"Idempotency-Key", key}
	}
	resp, err := s.do(ctx, http.MethodPost, "/users", nil, body, withToken, header...)
	if err != nil {
		return nil, nil, err
	}
	var u *user
	if resp.status == http.StatusOK || resp.status == http.StatusCreated {
		var parsed user
		if json.Unmarshal(resp.body, &parsed) == nil && parsed.ID != "" {
			u = &parsed
			if !containsID(s.created, u.ID) {
				s.created = append(s.created, u.ID)
			}
		}
	}
	return resp, u, nil
}

// sameUser compares a user the hook returned with the body it was created
// from; emails compare case-insensitively.
func sameUser(got *user, want map[string]any) error {
	var diffs []string
	cmp := func(field, g string) {
		w, _ := want[field].(string)
		if field == "email" && strings.EqualFold(g, w) {
			return
		}
		if g != w {
			diffs = append(diffs, fmt.Sprintf("%s = %q; want %q", field, g, w))
		}
	}
	cmp("email", got.Email)
	cmp("given_name", got.GivenName)
	cmp("family_name", got.FamilyName)
	cmp("display_name", got.DisplayName)
	cmp("role", got.Role)
	cmp("company", got.Company)
	cmp("external_id", got.ExternalID)
	cmp("provider", got.Provider)
	if w, _ := want["active"].(bool); got.Active != w {
		diffs = append(diffs, fmt.Sprintf("active = %v; want %v", got.Active, w))
	}
	if len(diffs) > 0 {
		return fmt.Errorf("user %s: %s", got.ID, strings.Join(diffs, ", "))
	}
	return nil
}

func checkCreate(ctx context.Context, s *suite) error {
	body, err := s.newUser("ada", s.target.Company, "agent")
	if err != nil {
		return err
	}
	key, err := s.randomUUID()
	if err != nil {
		return err
	}
	resp, _, err := s.create(ctx, body, key)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusCreated)
	if err != nil {
		return err
	}
	if err := sameUser(u, body); err != nil {
		return err
	}
	s.ada, s.adaBody, s.adaKey = u, body, key
	return nil
}

func checkIdempotentRetry(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	resp, _, err := s.create(ctx, s.adaBody, s.adaKey)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusOK, http.StatusCreated)
	if err != nil {
		return err
	}
	if u.ID != s.ada.ID {
		return fmt.Errorf("retried create made user %s; want the first one, %s", u.ID, s.ada.ID)
	}
	return sameUser(u, s.adaBody)
}

func checkCreateSecond(ctx context.Context, s *suite) error {
	body, err := s.newUser("bob", s.target.Company, "supervisor")
	if err != nil {
		return err
	}
	key, err := s.randomUUID()
	if err != nil {
		return err
	}
	resp, _, err := s.create(ctx, body, key)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusCreated)
	if err != nil {
		return err
	}
	if s.ada != nil && u.ID == s.ada.ID {
		return fmt.Errorf("a new key and another email made user %s again", u.ID)
	}
	s.bob = u
	return sameUser(u, body)
}

func checkDuplicateEmail(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	body, err := s.newUser("ada", s.target.Company, "agent")
	if err != nil {
		return err
	}
	body["email"] = strings.ToUpper(s.ada.Email)
	resp, _, err := s.create(ctx, body, "")
	if err != nil {
		return err
	}
	return resp.wantError("duplicate_email", http.StatusConflict)
}

func checkDuplicateExternalID(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	body, err := s.newUser("adeline", s.target.Company, "agent")
	if err != nil {
		return err
	}
	body["external_id"] = s.ada.ExternalID
	resp, _, err := s.create(ctx, body, "")
	if err != nil {
		return err
	}
	return resp.wantError("duplicate_external_id", http.StatusConflict)
}

func checkOtherCompany(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	body, err := s.newUser("ada", s.target.OtherCompany, "account_holder")
	if err != nil {
		return err
	}
	body["email"] = s.ada.Email
	resp, _, err := s.create(ctx, body, "")
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusCreated)
	if err != nil {
		return fmt.Errorf("the same email in another company: %w", err)
	}
	if u.ID == s.ada.ID {
		return fmt.Errorf("creating in company %q returned the user of company %q", s.target.OtherCompany, s.target.Company)
	}
	s.other = u
	return sameUser(u, body)
}

func checkCreateInvalid(ctx context.Context, s *suite) error {
	tests := []struct {
		name   string
		change func(map[string]any)
	}{
		{"no email", func(b map[string]any) { delete(b, "email") }},
		{"malformed email", func(b map[string]any) { b["email"] = "not an email" }},
		{"unknown role", func(b map[string]any) { b["role"] = "admin" }},
		{"no role", func(b map[string]any) { delete(b, "role") }},
		{"no company", func(b map[string]any) { delete(b, "company") }},
	}
	for _, tt := range tests {
		body, err := s.newUser("invalid", s.target.Company, "agent")
		if err != nil {
			return err
		}
		tt.change(body)
		resp, _, err := s.create(ctx, body, "")
		if err != nil {
			return err
		}
		if err := resp.wantError("invalid", http.StatusBadRequest, http.StatusUnprocessableEntity); err != nil {
			return fmt.Errorf("%s: %w", tt.name, err)
		}
	}
	return nil
}

// find looks users up by one field.
func (s *suite) find(ctx context.Context, company, field, value string) ([]user, error) {
	resp, err := s.do(ctx, http.MethodGet, "/users", url.Values{"company": {company}, field: {value}}, nil, withToken)
	if err != nil {
		return nil, err
	}
	users, _, err := resp.users()
	return users, err
}

// wantFound checks that users is exactly the user with id want ("" for
// none).
func wantFound(what string, users []user, want string) error {
	switch {
	case want == "" && len(users) != 0:
		return fmt.Errorf("%s found %d users (first %s); want none", what, len(users), users[0].ID)
	case want != "" && (len(users) != 1 || users[0].ID != want):
		ids := make([]string, len(users))
		for i, u := range users {
			ids[i] = u.ID
		}
		return fmt.Errorf("%s found %v; want exactly [%s]", what, ids, want)
	}
	return nil
}

func checkFindByEmail(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	for _, email := range []string{s.ada.Email, strings.ToUpper(s.ada.Email), strings.ToLower(s.ada.Email)} {
		users, err := s.find(ctx, s.target.Company, "email", email)
		if err != nil {
			return err
		}
		if err := wantFound(fmt.Sprintf("email %q", email), users, s.ada.ID); err != nil {
			return err
		}
		if err := sameUser(&users[0], s.adaBody); err != nil {
			return err
		}
	}
	if s.other == nil {
		return errNeeds("create/same email in another company")
	}
	users, err := s.find(ctx, s.target.OtherCompany, "email", s.ada.Email)
	if err != nil {
		return err
	}
	return wantFound(fmt.Sprintf("email %q in company %q", s.ada.Email, s.target.OtherCompany), users, s.other.ID)
}

func checkFindByEmailNone(ctx context.Context, s *suite) error {
	email := "nobody." + s.tag + "@hookcheck.example.com"
	users, err := s.find(ctx, s.target.Company, "email", email)
	if err != nil {
		return err
	}
	return wantFound(fmt.Sprintf("email %q", email), users, "")
}

func checkFindByExternalID(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	users, err := s.find(ctx, s.target.Company, "external_id", s.ada.ExternalID)
	if err != nil {
		return err
	}
	if err := wantFound("external id "+s.ada.ExternalID, users, s.ada.ID); err != nil {
		return err
	}
	users, err = s.find(ctx, s.target.OtherCompany, "external_id", s.ada.ExternalID)
	if err != nil {
		return err
	}
	return wantFound(fmt.Sprintf("external id %s in company %q", s.ada.ExternalID, s.target.OtherCompany), users, "")
}

func checkFindByExternalIDNone(ctx context.Context, s *suite) error {
	oid, err := s.randomUUID()
	if err != nil {
		return err
	}
	users, err := s.find(ctx, s.target.Company, "external_id", oid)
	if err != nil {
		return err
	}
	return wantFound("external id "+oid, users, "")
}

func containsID(ids []string, id string) bool { return slices.Contains(ids, id) }
