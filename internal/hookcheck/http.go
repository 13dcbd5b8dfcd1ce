package hookcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/engage-sso/engage-sso/caddymodule/directory"
)

// user is a user in the contract's wire format.
type user = directory.User

// maxBody is the largest answer read.
const maxBody = 1 << 20

// auth says what Authorization header a request carries.
type auth struct {
	header string
	valid  bool // use Target.Token
}

var (
	withToken = auth{valid: true}
	noAuth    = auth{}
)

func bearer(tok string) auth { return auth{header: "Bearer " + tok} }

// response is an answer of the hook.
type response struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

// do sends one request; body, if not nil, is sent as JSON.
func (s *suite) do(ctx context.Context, method, path string, query url.Values, body any, a auth, header ...string) (*response, error) {
	target := s.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	switch {
	case a.valid:
		tok, err := s.target.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("getting a bearer token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case a.header != "":
		req.Header.Set("Authorization", a.header)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading answer: %w", method, path, err)
	}
	if len(data) > maxBody {
		return nil, fmt.Errorf("%s %s: answer larger than %d bytes", method, path, maxBody)
	}
	return &response{method: method, path: path, status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// String names the request and its answer for error messages.
func (r *response) String() string {
	body := string(r.body)
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Sprintf("%s %s: status %d, body %q", r.method, r.path, r.status, strings.TrimSpace(body))
}

// json checks that the answer is JSON and decodes it into v.
func (r *response) json(v any) error {
	mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return fmt.Errorf("%v: Content-Type %q; want application/json", r, r.header.Get("Content-Type"))
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("%v: body is not the expected JSON: %w", r, err)
	}
	return nil
}

// wantStatus checks the status.
func (r *response) wantStatus(statuses ...int) error {
	if !slices.Contains(statuses, r.status) {
		return fmt.Errorf("%v; want status %v", r, statuses)
	}
	return nil
}

// wantError checks an error answer: one of statuses, and the contract's
// error body with the given code.
func (r *response) wantError(code string, statuses ...int) error {
	if err := r.wantStatus(statuses...); err != nil {
		return err
	}
	var body struct {
		Error *struct {
			Code    *string `json:"code"`
			Message *string `json:"message"`
		} `json:"error"`
	}
	if err := r.json(&body); err != nil {
		return err
	}
	switch {
	case body.Error == nil || body.Error.Code == nil || body.Error.Message == nil:
		return fmt.Errorf(`%v; want a body {"error":{"code":…,"message":…}}`, r)
	case *body.Error.Code != code:
		return fmt.Errorf("%v; want error code %q", r, code)
	}
	return nil
}

// user decodes a user answer with one of statuses.
func (r *response) user(statuses ...int) (*user, error) {
	if err := r.wantStatus(statuses...); err != nil {
		return nil, err
	}
	var u user
	if err := r.json(&u); err != nil {
		return nil, err
	}
	if u.ID == "" {
		return nil, fmt.Errorf("%v: user without id", r)
	}
	return &u, nil
}

// users decodes a 200 answer of GET /users.
func (r *response) users() ([]user, string, error) {
	if err := r.wantStatus(http.StatusOK); err != nil {
		return nil, "", err
	}
	var page struct {
		Users      json.RawMessage `json:"users"`
		NextCursor *string         `json:"next_cursor"`
	}
	if err := r.json(&page); err != nil {
		return nil, "", err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(page.Users), []byte("[")) {
		return nil, "", fmt.Errorf("%v: \"users\" is not an array", r)
	}
	var users []user
	if err := json.Unmarshal(page.Users, &users); err != nil {
		return nil, "", fmt.Errorf("%v: %w", r, err)
	}
	next := ""
	if page.NextCursor != nil {
		next = *page.NextCursor
	}
	return users, next, nil
}

func userPath(id string) string { return "/users/" + url.PathEscape(id) }
