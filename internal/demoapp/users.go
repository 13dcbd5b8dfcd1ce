package demoapp

import (
	"bytes"
	"cmp"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/engage-sso/engage-sso/pkg/engageauth"
)

// usersData is what users.html.tmpl renders.
type usersData struct {
	Identity  *engageauth.Identity
	RoleLabel string
	Forbidden bool
	Users     []userRow
}

// userRow is one line of the users page.
type userRow struct {
	record
	Name      string
	RoleLabel string
}

// users serves the users page: the company's users, for its account
// holders only.
func (a *app) users(w http.ResponseWriter, r *http.Request) {
	id, ok := engageauth.FromContext(r.Context())
	if !ok {
		http.Error(w, "no identity", http.StatusUnauthorized)
		return
	}
	data := usersData{Identity: id, RoleLabel: RoleLabel(id.Role)}
	status := http.StatusOK
	if !id.AtLeast(engageauth.RoleAccountHolder) {
		data.Forbidden = true
		status = http.StatusForbidden
	} else {
		a.store.read(func(st *state) {
			for _, rec := range st.companyUsers(id.Company) {
				name := rec.DisplayName
				if name == "" {
					name = strings.TrimSpace(rec.GivenName + " " + rec.FamilyName)
				}
				data.Users = append(data.Users, userRow{record: rec, Name: name, RoleLabel: RoleLabel(rec.Role)})
			}
		})
		slices.SortStableFunc(data.Users, func(a, b userRow) int {
			return cmp.Compare(strings.ToLower(a.Email), strings.ToLower(b.Email))
		})
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, "users.html.tmpl", data); err != nil {
		a.logger.ErrorContext(r.Context(), "demoapp: rendering users page", slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	a.log(r, id)
	writeHTML(w, status, buf.Bytes())
}
