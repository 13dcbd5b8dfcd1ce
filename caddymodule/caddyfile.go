package caddymodule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/engage-sso/engage-sso/caddymodule/identity"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("engage_sso", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("engage_sso", parseHandler)
	// Right after the other authentication directives, so that it also
	// guards handle/route blocks and runs before reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder("engage_sso", httpcaddyfile.After, "forward_auth")
}

// parseGlobalOption parses the `engage_sso` global option into the app.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("engage_sso: the global option is given twice; put everything in one block")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "engage_sso", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens. Syntax:
//
//	engage_sso {
//		base_url <url>
//		store <backend> [{ ... }]
//		session {
//			cookie_name   <name>
//			idle_timeout  <duration>
//			lifetime      <duration>
//			login_timeout <duration>
//			cache_ttl     <duration>|off
//			cache_size    <n>
//		}
//		token {
//			issuer           <iss>
//			audience         <aud>
//			ttl              <duration>
//			signing_key_file <path>
//			rotate_every     <duration>
//		}
//		user_hook <url> {
//			audience     <aud>
//			timeout      <duration>
//			max_attempts <n>
//			tls {
//				ca_file     <path>
//				cert_file   <path>
//				key_file    <path>
//				server_name <name>
//			}
//		}
//		company <id> {
//			name      <display name>
//			domains   <domain...>
//			user_hook <url>
//			provider <label> {
//				metadata_file    <path>
//				metadata_url     <url>
//				metadata_refresh <duration>
//				entity_id        <uri>
//				mapping          groups|roles
//				agent            <id>[|<id>...] [<id>...]
//				supervisor       <id>[|<id>...] [<id>...]
//				account_holder   <id>[|<id>...] [<id>...]
//				jit              on|off
//				idp_initiated    on|off
//				allow_sha1       on|off
//				clock_skew       <duration>
//				encryption       off|allowed|required
//				sign_requests    on|off
//				sp_certificate   <cert.pem> <key.pem>
//				sp_previous_key  <key.pem...>
//				max_response_size <bytes>[KiB|MiB]
//				graph {
//					tenant_id     <tenant id>
//					client_id     <application id>
//					client_secret <secret, e.g. {env.GRAPH_CLIENT_SECRET}>
//					login_url     <url>
//					graph_url     <url>
//					timeout       <duration>
//				}
//				default_path     <path>
//				claims {
//					email|upn|given_name|surname|display_name|object_id|tenant_id|groups|roles|groups_link <claim URI>
//				}
//			}
//		}
//	}
//
// Company ids, labels and domains are checked as they are read, so an error
// names the file and line; a label or domain may be used only once.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := settings{}
	labels := map[string]int{}
	domains := map[string]int{}
	companies := map[string]int{}
	for d.NextBlock(0) {
		key := d.Val()
		if err := seen.once(d, key, key != "company"); err != nil {
			return err
		}
		switch key {
		case "base_url":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if err := checkBaseURL(strings.TrimSuffix(v, "/")); err != nil && !strings.Contains(v, "{") {
				return d.Errf("base_url: %v", err)
			}
			a.BaseURL = v
		case "store":
			if !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "engage_sso.stores."+name)
			if err != nil {
				return d.Errf("store %q: %v", name, err)
			}
			a.StoreRaw = caddyconfig.JSONModuleObject(mod, "backend", name, nil)
		case "session":
			if err := a.Session.unmarshal(d); err != nil {
				return err
			}
		case "token":
			if err := a.Token.unmarshal(d); err != nil {
				return err
			}
		case "user_hook":
			a.UserHook = new(UserHook)
			if err := a.UserHook.unmarshal(d); err != nil {
				return err
			}
		case "company":
			c, err := unmarshalCompany(d, companies, labels, domains)
			if err != nil {
				return err
			}
			a.Companies = append(a.Companies, c)
		default:
			return d.Errf("unknown engage_sso setting %q (want base_url, store, session, token, user_hook or company)", key)
		}
	}
	if len(a.Companies) > 0 && a.BaseURL == "" {
		return d.Err("engage_sso: base_url is required: the public URL of the site, such as https://engage.example.com")
	}
	return nil
}

func (s *SessionConfig) unmarshal(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if err := seen.once(d, "session."+key, true); err != nil {
			return err
		}
		var err error
		switch key {
		case "cookie_name":
			s.CookieName, err = oneArg(d)
			if err == nil && !validCookieName(s.CookieName) {
				err = d.Errf("cookie_name: %q is not a valid cookie name", s.CookieName)
			}
		case "idle_timeout":
			s.IdleTimeout, err = durationArg(d)
		case "lifetime":
			s.Lifetime, err = durationArg(d)
		case "login_timeout":
			s.LoginTimeout, err = durationArg(d)
		case "cache_ttl":
			var v string
			if v, err = oneArg(d); err == nil {
				if v == "off" {
					s.CacheOff = true
				} else if dur, perr := caddy.ParseDuration(v); perr != nil || dur <= 0 {
					err = d.Errf("cache_ttl: want a positive duration or off, got %q", v)
				} else {
					s.CacheTTL = caddy.Duration(dur)
				}
			}
		case "cache_size":
			s.CacheSize, err = intArg(d)
		default:
			err = d.Errf("unknown session setting %q (want cookie_name, idle_timeout, lifetime, login_timeout, cache_ttl or cache_size)", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (t *TokenConfig) unmarshal(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if err := seen.once(d, "token."+key, true); err != nil {
			return err
		}
		var err error
		switch key {
		case "issuer":
			t.Issuer, err = oneArg(d)
		case "audience":
			t.Audience, err = oneArg(d)
		case "ttl":
			t.TTL, err = durationArg(d)
		case "signing_key_file":
			t.SigningKeyFile, err = oneArg(d)
		case "rotate_every":
			t.RotateEvery, err = durationArg(d)
		default:
			err = d.Errf("unknown token setting %q (want issuer, audience, ttl, signing_key_file or rotate_every)", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshal parses `user_hook <url> [{ ... }]`.
func (u *UserHook) unmarshal(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Errf("user_hook: missing URL")
	}
	u.URL = d.Val()
	if err := checkHookURL(u.URL); err != nil && !strings.Contains(u.URL, "{") {
		return d.Errf("user_hook: %v", err)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if err := seen.once(d, "user_hook."+key, true); err != nil {
			return err
		}
		var err error
		switch key {
		case "audience":
			u.Audience, err = oneArg(d)
		case "timeout":
			u.Timeout, err = durationArg(d)
		case "max_attempts":
			u.MaxAttempts, err = intArg(d)
			if err == nil && u.MaxAttempts > 10 {
				err = d.Errf("max_attempts: at most 10")
			}
		case "tls":
			u.TLS = new(TLSFiles)
			err = u.TLS.unmarshal(d)
		default:
			err = d.Errf("unknown user_hook setting %q (want audience, timeout, max_attempts or tls)", key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func unmarshalCompany(d *caddyfile.Dispenser, companies, labels, domains map[string]int) (*Company, error) {
	id, err := oneArgNoEnd(d)
	if err != nil {
		return nil, err
	}
	if !labelRE.MatchString(id) {
		return nil, d.Errf("company: invalid id %q: use 2-63 lower-case letters, digits and '-'", id)
	}
	if line, dup := companies[id]; dup {
		return nil, d.Errf("company %q is already defined on line %d", id, line)
	}
	companies[id] = d.Line()
	c := &Company{ID: id}
	seen := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if err := seen.once(d, "company."+key, key != "provider"); err != nil {
			return nil, err
		}
		switch key {
		case "name":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			c.Name = strings.Join(args, " ")
		case "domains":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return nil, d.ArgErr()
			}
			for _, dom := range args {
				if err := identity.ValidateDomain(dom); err != nil {
					return nil, d.Errf("company %q: domains: %v", id, err)
				}
				k := strings.ToLower(dom)
				if line, dup := domains[k]; dup {
					return nil, d.Errf("company %q: domain %q is already authorised on line %d; a domain belongs to one company", id, dom, line)
				}
				domains[k] = d.Line()
				c.Domains = append(c.Domains, k)
			}
		case "user_hook":
			v, err := oneArg(d)
			if err != nil {
				return nil, err
			}
			if err := checkHookURL(v); err != nil && !strings.Contains(v, "{") {
				return nil, d.Errf("company %q: user_hook: %v", id, err)
			}
			c.UserHookURL = v
		case "provider":
			p, err := unmarshalProvider(d, labels)
			if err != nil {
				return nil, err
			}
			c.Providers = append(c.Providers, p)
		default:
			return nil, d.Errf("unknown company setting %q (want name, domains, user_hook or provider)", key)
		}
	}
	if c.Name == "" {
		c.Name = id
	}
	if len(c.Domains) == 0 {
		return nil, fmt.Errorf("company %q has no authorised domains: add `domains <domain...>`, at %s:%d", id, d.File(), companies[id])
	}
	if len(c.Providers) == 0 {
		return nil, fmt.Errorf("company %q has no provider: add a `provider <label> { ... }` block, at %s:%d", id, d.File(), companies[id])
	}
	return c, nil
}

func unmarshalProvider(d *caddyfile.Dispenser, labels map[string]int) (*Provider, error) {
	label, err := oneArgNoEnd(d)
	if err != nil {
		return nil, err
	}
	if !labelRE.MatchString(label) {
		return nil, d.Errf("provider: invalid label %q: use 2-63 lower-case letters, digits and '-' (it appears in URLs)", label)
	}
	if line, dup := labels[label]; dup {
		return nil, d.Errf("provider label %q is already used on line %d; labels are unique across the deployment", label, line)
	}
	startLine := d.Line()
	labels[label] = startLine
	p := &Provider{Label: label}
	seen := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if err := seen.once(d, "provider."+key, true); err != nil {
			return nil, err
		}
		var err error
		switch key {
		case "metadata_file":
			p.MetadataFile, err = oneArg(d)
		case "metadata_url":
			p.MetadataURL, err = oneArg(d)
		case "metadata_refresh":
			p.MetadataRefresh, err = durationArg(d)
		case "entity_id":
			p.EntityID, err = oneArg(d)
		case "mapping":
			var v string
			if v, err = oneArg(d); err == nil {
				var m identity.MappingMode
				if m, err = identity.ParseMappingMode(v); err != nil {
					err = d.Errf("provider %q: mapping: %v", label, err)
				}
				p.MappingMode = string(m)
			}
		case "agent", "supervisor", "account_holder":
			args := d.RemainingArgs()
			var ids []string
			for _, a := range args {
				ids = append(ids, identity.SplitIDs(a)...)
			}
			if len(ids) == 0 {
				return nil, d.Errf("provider %q: %s: give one or more group object IDs or app role values (several separated by '|')", label, key)
			}
			if p.Roles == nil {
				p.Roles = map[string][]string{}
			}
			p.Roles[key] = ids
		case "jit":
			var b bool
			b, err = onOffArg(d)
			p.JIT = &b
		case "idp_initiated":
			var b bool
			b, err = onOffArg(d)
			p.AllowIdPInitiated = &b
		case "allow_sha1":
			p.AllowSHA1, err = onOffArg(d)
		case "clock_skew":
			var v string
			if v, err = oneArg(d); err == nil {
				var dur time.Duration
				if dur, err = caddy.ParseDuration(v); err != nil || dur < 0 {
					err = d.Errf("provider %q: clock_skew: invalid duration %q", label, v)
				}
				p.ClockSkew = caddy.Duration(dur)
			}
		case "encryption":
			if p.Encryption, err = oneArg(d); err == nil {
				if _, merr := p.encryptionMode(); merr != nil {
					err = d.Errf("provider %q: encryption: %v", label, merr)
				}
			}
		case "sign_requests":
			p.SignRequests, err = onOffArg(d)
		case "sp_certificate":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.Errf("provider %q: sp_certificate: want <cert_file> <key_file> (PEM)", label)
			}
			p.SPCertFile, p.SPKeyFile = args[0], args[1]
		case "sp_previous_key":
			p.SPPreviousKeyFiles = d.RemainingArgs()
			if len(p.SPPreviousKeyFiles) == 0 {
				return nil, d.Errf("provider %q: sp_previous_key: give one or more PEM key files", label)
			}
		case "max_response_size":
			var v string
			if v, err = oneArg(d); err == nil {
				if p.MaxResponseSize, err = parseSize(v); err != nil {
					err = d.Errf("provider %q: max_response_size: %v", label, err)
				}
			}
		case "graph":
			p.Graph, err = unmarshalGraph(d, label)
		case "default_path":
			p.DefaultPath, err = oneArg(d)
			if err == nil && safeReturnPath(p.DefaultPath) != p.DefaultPath {
				err = d.Errf("provider %q: default_path %q must be a local path starting with '/'", label, p.DefaultPath)
			}
		case "claims":
			err = unmarshalClaims(d, &p.Claims)
		default:
			err = d.Errf("unknown provider setting %q (want metadata_file, metadata_url, metadata_refresh, entity_id, mapping, agent, supervisor, account_holder, jit, idp_initiated, allow_sha1, clock_skew, encryption, sign_requests, sp_certificate, sp_previous_key, max_response_size, graph, default_path or claims)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	at := fmt.Sprintf(", at %s:%d", d.File(), startLine)
	switch {
	case p.MetadataFile == "" && p.MetadataURL == "":
		return nil, fmt.Errorf("provider %q has no IdP metadata: add metadata_file <path> or metadata_url <url>%s", label, at)
	case p.MetadataFile != "" && p.MetadataURL != "":
		return nil, fmt.Errorf("provider %q: set only one of metadata_file and metadata_url%s", label, at)
	case len(p.Roles) == 0:
		return nil, fmt.Errorf("provider %q maps no role: add at least one of agent, supervisor, account_holder with group object IDs or app role values%s", label, at)
	}
	return p, nil
}

func unmarshalGraph(d *caddyfile.Dispenser, label string) (*GraphConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	g := &GraphConfig{}
	fields := map[string]*string{
		"tenant_id": &g.TenantID, "client_id": &g.ClientID, "client_secret": &g.ClientSecret,
		"login_url": &g.LoginURL, "graph_url": &g.GraphURL,
	}
	seen := settings{}
	start := d.Line()
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if err := seen.once(d, "graph."+key, true); err != nil {
			return nil, err
		}
		if key == "timeout" {
			var err error
			if g.Timeout, err = durationArg(d); err != nil {
				return nil, err
			}
			continue
		}
		f, ok := fields[key]
		if !ok {
			return nil, d.Errf("unknown graph setting %q (want tenant_id, client_id, client_secret, login_url, graph_url or timeout)", key)
		}
		v, err := oneArg(d)
		if err != nil {
			return nil, err
		}
		*f = v
	}
	if g.TenantID == "" || g.ClientID == "" || g.ClientSecret == "" {
		return nil, fmt.Errorf("provider %q: graph needs tenant_id, client_id and client_secret, at %s:%d", label, d.File(), start)
	}
	return g, nil
}

func unmarshalClaims(d *caddyfile.Dispenser, c *identity.ClaimNames) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	fields := map[string]*string{
		"email": &c.Email, "upn": &c.UPN, "given_name": &c.GivenName, "surname": &c.Surname,
		"display_name": &c.DisplayName, "object_id": &c.ObjectID, "tenant_id": &c.TenantID,
		"groups": &c.Groups, "roles": &c.Roles, "groups_link": &c.GroupsLink,
	}
	seen := settings{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		f, ok := fields[key]
		if !ok {
			return d.Errf("unknown claim %q (want email, upn, given_name, surname, display_name, object_id, tenant_id, groups, roles or groups_link)", key)
		}
		if err := seen.once(d, "claims."+key, true); err != nil {
			return err
		}
		v, err := oneArg(d)
		if err != nil {
			return err
		}
		*f = v
	}
	return nil
}

// parseHandler parses the `engage_sso` site directive. Syntax:
//
//	engage_sso {
//		header        <name>
//		plain_headers
//	}
func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := settings{}
	for d.NextBlock(0) {
		key := d.Val()
		if err := seen.once(d, key, true); err != nil {
			return err
		}
		switch key {
		case "header":
			v, err := oneArg(d)
			if err != nil {
				return err
			}
			if !validHeaderName(v) {
				return d.Errf("header: %q is not a valid header name", v)
			}
			h.Header = v
		case "plain_headers":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.PlainHeaders = true
		default:
			return d.Errf("unknown engage_sso directive setting %q (want header or plain_headers); company and provider settings go in the engage_sso global option", key)
		}
	}
	return nil
}

// settings rejects a setting given twice in one block.
type settings map[string]int

func (s settings) once(d *caddyfile.Dispenser, key string, unique bool) error {
	if line, dup := s[key]; dup && unique {
		return d.Errf("%s is set twice (first on line %d)", key, line)
	}
	s[key] = d.Line()
	return nil
}

// oneArg reads exactly one argument on the current line.
func oneArg(d *caddyfile.Dispenser) (string, error) {
	key := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: missing value", key)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s: takes one value, got another: %q", key, d.Val())
	}
	return v, nil
}

// oneArgNoEnd reads one argument that opens a block.
func oneArgNoEnd(d *caddyfile.Dispenser) (string, error) {
	key := d.Val()
	if !d.NextArg() {
		return "", d.Errf("%s: missing name", key)
	}
	v := d.Val()
	if d.NextArg() {
		return "", d.Errf("%s %s: unexpected %q (expected a block)", key, v, d.Val())
	}
	return v, nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	key := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("%s: invalid duration %q: %v", key, v, err)
	}
	if dur <= 0 {
		return 0, d.Errf("%s: duration must be positive, got %q", key, v)
	}
	return caddy.Duration(dur), nil
}

func intArg(d *caddyfile.Dispenser) (int, error) {
	key := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, d.Errf("%s: want a positive whole number, got %q", key, v)
	}
	return n, nil
}

// parseSize parses a byte count: a whole number, optionally followed by
// KiB or MiB (KB and MB are read as the same).
func parseSize(v string) (int, error) {
	num, mult := v, 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"KB", 1 << 10}, {"MiB", 1 << 20}, {"MB", 1 << 20}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 || n > (1<<30)/mult {
		return 0, fmt.Errorf("%q is not a size: want a positive number of bytes, or a number with KiB or MiB", v)
	}
	return n * mult, nil
}

func onOffArg(d *caddyfile.Dispenser) (bool, error) {
	key := d.Val()
	v, err := oneArg(d)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(v) {
	case "on", "true", "yes":
		return true, nil
	case "off", "false", "no":
		return false, nil
	}
	return false, d.Errf("%s: want on or off, got %q", key, v)
}

// Interface guards.
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
