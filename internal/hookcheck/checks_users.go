package hookcheck

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxPages bounds the list check, in case a hook's cursors never end.
const maxPages = 1000

// get reads one user.
func (s *suite) get(ctx context.Context, id string) (*response, error) {
	return s.do(ctx, http.MethodGet, userPath(id), nil, nil, withToken)
}

// unknownID is an id no hook has: a test user's id with a suffix.
func (s *suite) unknownID() string { return "hookcheck-missing-" + s.tag }

func checkGet(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	resp, err := s.get(ctx, s.ada.ID)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusOK)
	if err != nil {
		return err
	}
	if u.ID != s.ada.ID {
		return fmt.Errorf("GET /users/%s returned user %s", s.ada.ID, u.ID)
	}
	return sameUser(u, s.adaBody)
}

func checkGetUnknown(ctx context.Context, s *suite) error {
	resp, err := s.get(ctx, s.unknownID())
	if err != nil {
		return err
	}
	return resp.wantError("not_found", http.StatusNotFound)
}

func checkUpdate(ctx context.Context, s *suite) error {
	if s.ada == nil {
		return errNeeds("create")
	}
	patch := map[string]any{
		"role":         "supervisor",
		"given_name":   "Augusta",
		"family_name":  "King",
		"display_name": "Augusta Ada King",
	}
	resp, err := s.do(ctx, http.MethodPatch, userPath(s.ada.ID), nil, patch, withToken)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusOK)
	if err != nil {
		return err
	}
	want := maps.Clone(s.adaBody)
	maps.Copy(want, patch)
	if err := sameUser(u, want); err != nil {
		return fmt.Errorf("PATCH answer: %w", err)
	}
	resp, err = s.get(ctx, s.ada.ID)
	if err != nil {
		return err
	}
	if u, err = resp.user(http.StatusOK); err != nil {
		return err
	}
	if err := sameUser(u, want); err != nil {
		return fmt.Errorf("GET after PATCH: %w", err)
	}
	s.adaBody = want
	return nil
}

func checkUpdateDuplicate(ctx context.Context, s *suite) error {
	if s.ada == nil || s.bob == nil {
		return errNeeds("create and create/second user")
	}
	resp, err := s.do(ctx, http.MethodPatch, userPath(s.ada.ID), nil,
		map[string]any{"email": strings.ToUpper(s.bob.Email)}, withToken)
	if err != nil {
		return err
	}
	if err := resp.wantError("duplicate_email", http.StatusConflict); err != nil {
		return err
	}
	resp, err = s.get(ctx, s.ada.ID)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusOK)
	if err != nil {
		return err
	}
	if !strings.EqualFold(u.Email, s.ada.Email) {
		return fmt.Errorf("a refused PATCH changed the email to %q", u.Email)
	}
	return nil
}

func checkUpdateUnknown(ctx context.Context, s *suite) error {
	resp, err := s.do(ctx, http.MethodPatch, userPath(s.unknownID()), nil, map[string]any{"role": "agent"}, withToken)
	if err != nil {
		return err
	}
	return resp.wantError("not_found", http.StatusNotFound)
}

func checkDeactivate(ctx context.Context, s *suite) error {
	if s.bob == nil {
		return errNeeds("create/second user")
	}
	for i := range 2 { // deactivating twice succeeds twice
		resp, err := s.do(ctx, http.MethodPost, userPath(s.bob.ID)+"/deactivate", nil, nil, withToken)
		if err != nil {
			return err
		}
		if err := resp.wantStatus(http.StatusOK, http.StatusNoContent); err != nil {
			return fmt.Errorf("deactivation %d: %w", i+1, err)
		}
	}
	resp, err := s.get(ctx, s.bob.ID)
	if err != nil {
		return err
	}
	u, err := resp.user(http.StatusOK)
	if err != nil {
		return err
	}
	if u.Active {
		return fmt.Errorf("user %s is still active after deactivation", u.ID)
	}
	// engage-sso must see inactive users, to refuse them.
	users, err := s.find(ctx, s.target.Company, "email", s.bob.Email)
	if err != nil {
		return err
	}
	if err := wantFound("email "+s.bob.Email+" of a deactivated user", users, s.bob.ID); err != nil {
		return err
	}
	if users[0].Active {
		return fmt.Errorf("lookup shows deactivated user %s as active", u.ID)
	}
	return nil
}

func checkDeactivateUnknown(ctx context.Context, s *suite) error {
	resp, err := s.do(ctx, http.MethodPost, userPath(s.unknownID())+"/deactivate", nil, nil, withToken)
	if err != nil {
		return err
	}
	return resp.wantError("not_found", http.StatusNotFound)
}

// checkList adds a third user and pages through the company two users at a
// time: every page holds at most two users of the company, no user appears
// twice, and all three test users appear.
func checkList(ctx context.Context, s *suite) error {
	if s.ada == nil || s.bob == nil {
		return errNeeds("create and create/second user")
	}
	body, err := s.newUser("carol", s.target.Company, "agent")
	if err != nil {
		return err
	}
	resp, carol, err := s.create(ctx, body, "")
	if err != nil {
		return err
	}
	if _, err := resp.user(http.StatusCreated); err != nil {
		return err
	}
	seen := map[string]bool{}
	cursor := ""
	for page := 1; ; page++ {
		if page > maxPages {
			return fmt.Errorf("listing did not end after %d pages", maxPages)
		}
		q := url.Values{"company": {s.target.Company}, "limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		resp, err := s.do(ctx, http.MethodGet, "/users", q, nil, withToken)
		if err != nil {
			return err
		}
		users, next, err := resp.users()
		if err != nil {
			return err
		}
		if len(users) > 2 {
			return fmt.Errorf("page %d holds %d users; want at most the limit, 2", page, len(users))
		}
		for _, u := range users {
			switch {
			case u.Company != s.target.Company:
				return fmt.Errorf("page %d holds user %s of company %q", page, u.ID, u.Company)
			case seen[u.ID]:
				return fmt.Errorf("page %d repeats user %s", page, u.ID)
			}
			seen[u.ID] = true
		}
		if page == 1 && next == "" {
			return fmt.Errorf("page 1 of a company with at least 3 users has no next_cursor (limit 2)")
		}
		if next == "" {
			break
		}
		if next == cursor {
			return fmt.Errorf("page %d gives its own cursor as next_cursor", page)
		}
		cursor = next
	}
	for name, id := range map[string]string{"ada": s.ada.ID, "bob": s.bob.ID, "carol": carol.ID} {
		if !seen[id] {
			return fmt.Errorf("listing the company never showed %s (%s); saw %d users", name, id, len(seen))
		}
	}
	if s.other != nil && seen[s.other.ID] {
		return fmt.Errorf("listing company %q showed user %s of company %q", s.target.Company, s.other.ID, s.target.OtherCompany)
	}
	for _, bad := range []string{"0", strconv.Itoa(1 << 20), "two"} {
		resp, err := s.do(ctx, http.MethodGet, "/users", url.Values{"company": {s.target.Company}, "limit": {bad}}, nil, withToken)
		if err != nil {
			return err
		}
		if resp.status == http.StatusOK {
			continue // a hook may clamp the limit instead
		}
		if err := resp.wantError("invalid", http.StatusBadRequest, http.StatusUnprocessableEntity); err != nil {
			return fmt.Errorf("limit %q: %w", bad, err)
		}
	}
	return nil
}

func checkDelete(ctx context.Context, s *suite) error {
	if s.bob == nil {
		return errNeeds("create/second user")
	}
	resp, err := s.do(ctx, http.MethodDelete, userPath(s.bob.ID), nil, nil, withToken)
	if err != nil {
		return err
	}
	if err := resp.wantStatus(http.StatusNoContent, http.StatusOK); err != nil {
		return err
	}
	if resp, err = s.get(ctx, s.bob.ID); err != nil {
		return err
	}
	if err := resp.wantError("not_found", http.StatusNotFound); err != nil {
		return fmt.Errorf("GET after DELETE: %w", err)
	}
	users, err := s.find(ctx, s.target.Company, "email", s.bob.Email)
	if err != nil {
		return err
	}
	if err := wantFound("email of a deleted user", users, ""); err != nil {
		return err
	}
	if resp, err = s.do(ctx, http.MethodDelete, userPath(s.bob.ID), nil, nil, withToken); err != nil {
		return err
	}
	if err := resp.wantError("not_found", http.StatusNotFound); err != nil {
		return fmt.Errorf("second DELETE: %w", err)
	}
	return nil
}
