# Production image: Caddy with the engage_sso plugin, built with xcaddy.
# Unlike cmd/caddy it contains no demo modules.
#
#   docker build -f xcaddy.Dockerfile -t engage-sso .
#
# (Not built in CI: the CI machines have no Docker engine.)
FROM caddy:2.11-builder AS builder
WORKDIR /src
COPY . .
RUN xcaddy build v2.11.9 \
	--with github.com/engage-sso/engage-sso/caddymodule \
	--replace github.com/engage-sso/engage-sso=/src

FROM caddy:2.11
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
