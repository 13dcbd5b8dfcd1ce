package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/engage-sso/engage-sso/caddymodule/graph"
	"github.com/engage-sso/engage-sso/caddymodule/identity"
	"github.com/engage-sso/engage-sso/caddymodule/session"
)

// graphCachePrefix starts the store keys of cached group lookups.
const graphCachePrefix = "graph-groups:"

// overageError is a failed group overage resolution: the login is refused
// with the reason's page and status.
type overageError struct {
	reason string
	status int
	err    error
}

func (e *overageError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *overageError) Unwrap() error { return e.err }

// resolveOverage returns c with the groups claim filled in from Microsoft
// Graph when Azure sent a groups.link instead (the user is in more than
// 150 groups) and the provider has Graph credentials. Otherwise c is
// returned as it is, and identity.Resolve refuses an overage with its own
// page. The groups are cached in the store for the session lifetime, keyed
// by tenant and user. Any failure refuses the login (fail closed).
func (h *Handler) resolveOverage(r *http.Request, prov *provider, c identity.Claims) (identity.Claims, error) {
	ctx := r.Context()
	names := prov.policy.Claims.WithDefaults()
	if prov.graph == nil || prov.policy.Mode == identity.MappingRoles || len(c.Attributes[names.Groups]) > 0 {
		return c, nil
	}
	link := c.First(names.GroupsLink)
	if link == "" {
		return c, nil
	}
	denied := func(format string, args ...any) error {
		return &overageError{reason: "graph_error", status: http.StatusForbidden, err: fmt.Errorf(format, args...)}
	}
	oid := strings.ToLower(c.First(names.ObjectID))
	if oid == "" {
		return c, denied("the assertion has a groups.link but no objectidentifier claim to look the user up by")
	}
	if linkTenant, linkOID, ok := graph.ParseGroupsLink(link); ok {
		if linkOID != oid {
			return c, denied("the groups.link names user %s but the objectidentifier claim is %s", linkOID, oid)
		}
		if tid := prov.cfg.Graph.TenantID; identity.IsGUID(tid) && !strings.EqualFold(linkTenant, tid) {
			return c, denied("the groups.link is for tenant %s, but the Graph credentials are for tenant %s", linkTenant, tid)
		}
	}
	if tid, claimed := prov.cfg.Graph.TenantID, c.First(names.TenantID); identity.IsGUID(tid) && claimed != "" && !strings.EqualFold(claimed, tid) {
		return c, denied("the assertion is from tenant %s, but the Graph credentials are for tenant %s", claimed, tid)
	}

	key := graphCachePrefix + strings.ToLower(prov.cfg.Graph.TenantID) + ":" + oid
	groups, err := h.cachedGroups(ctx, key)
	switch {
	case err == nil:
		h.app.metrics.graph.WithLabelValues(prov.cfg.Label, "cached").Inc()
	case !errors.Is(err, session.ErrNotFound):
		return c, &overageError{reason: "store_unavailable", status: http.StatusServiceUnavailable, err: err}
	default:
		start := time.Now()
		groups, err = prov.graph.MemberGroups(ctx, oid)
		if err != nil {
			h.app.metrics.graph.WithLabelValues(prov.cfg.Label, "error").Inc()
			return c, graphFailure(err)
		}
		h.app.metrics.graph.WithLabelValues(prov.cfg.Label, "fetched").Inc()
		h.logger.Info("resolved group overage through Microsoft Graph",
			zap.String("correlation_id", correlationID(r)), zap.String("provider", prov.cfg.Label),
			zap.String("object_id", oid), zap.Int("groups", len(groups)), zap.Duration("took", time.Since(start)))
		data, err := json.Marshal(groups)
		if err != nil {
			return c, fmt.Errorf("encoding the groups: %w", err)
		}
		if err := h.app.store.PutCached(ctx, key, data, time.Duration(h.app.Session.Lifetime)); err != nil {
			return c, &overageError{reason: "store_unavailable", status: http.StatusServiceUnavailable, err: err}
		}
	}
	attrs := maps.Clone(c.Attributes)
	attrs[names.Groups] = groups
	return identity.Claims{NameID: c.NameID, Attributes: attrs}, nil
}

// cachedGroups reads a cached group list.
func (h *Handler) cachedGroups(ctx context.Context, key string) ([]string, error) {
	data, err := h.app.store.GetCached(ctx, key)
	if err != nil {
		return nil, err
	}
	var groups []string
	if err := json.Unmarshal(data, &groups); err != nil {
		// A damaged entry is as good as none: look the groups up again.
		return nil, session.ErrNotFound
	}
	return groups, nil
}

// graphFailure turns a Graph error into the refusal the user sees.
func graphFailure(err error) error {
	switch {
	case errors.Is(err, graph.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return &overageError{reason: "graph_unavailable", status: http.StatusServiceUnavailable, err: err}
	case errors.Is(err, graph.ErrCredentials), errors.Is(err, graph.ErrForbidden):
		return &overageError{reason: "graph_denied", status: http.StatusForbidden, err: err}
	default:
		return &overageError{reason: "graph_error", status: http.StatusForbidden, err: err}
	}
}
