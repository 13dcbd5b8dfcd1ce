package caddymodule

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are engage-sso's Prometheus metrics, registered in Caddy's
// registry so they appear on Caddy's metrics endpoint.
type metrics struct {
	reg    *prometheus.Registry
	logins *prometheus.CounterVec
	denied *prometheus.CounterVec
	graph  *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		reg: reg,
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "engage_sso",
			Name:      "logins_total",
			Help:      "Completed sign-ins, by provider.",
		}, []string{"provider"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "engage_sso",
			Name:      "login_failures_total",
			Help:      "Refused sign-in attempts, by provider and reason.",
		}, []string{"provider", "reason"}),
		graph: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "engage_sso",
			Name:      "graph_group_lookups_total",
			Help:      "Group overage resolutions, by provider and result (cached, fetched, error).",
		}, []string{"provider", "result"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.logins, err = register(reg, m.logins); err != nil {
		return nil, err
	}
	if m.denied, err = register(reg, m.denied); err != nil {
		return nil, err
	}
	if m.graph, err = register(reg, m.graph); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name.
func register(reg *prometheus.Registry, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) unregister() {
	if m.reg != nil {
		m.reg.Unregister(m.logins)
		m.reg.Unregister(m.denied)
		m.reg.Unregister(m.graph)
	}
}
