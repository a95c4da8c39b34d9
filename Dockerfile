# syntax=docker/dockerfile:1
# The aihub image: the gateway and the shipped provider plugins, built in a Rust stage and
# run as a non-root user on Debian slim. See docs/deployment.md.
#
#   docker build -t aihub .
#   docker run -p 8090:8090 -e AIHUB_ADMIN_TOKEN=... -v aihub-data:/var/lib/aihub aihub
#
# Build arguments: RUST_VERSION, DEBIAN (the release both stages use, so the binary's
# glibc matches the runtime's), PLUGINS (the Makefile's list by default).

ARG RUST_VERSION=1.95
ARG DEBIAN=trixie

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
ARG PLUGINS="echo openai anthropic gemini bedrock ideogram"
WORKDIR /src
# The whole workspace (.dockerignore leaves out target/, ui/, data/, docs/, .git): cargo
# reads every member's manifest even to build one package, the host embeds ui-dist/ and
# schema/, and links bench/alloc-count.
COPY . .
# The registry and target dir are build caches, not layers: the binaries are copied out
# in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    packages="-p aihub"; \
    for p in $PLUGINS; do packages="$packages -p aihub-plugin-$p"; done; \
    cargo build --release --locked $packages; \
    mkdir -p /out/plugins; \
    cp target/release/aihub /out/aihub; \
    for p in $PLUGINS; do cp "target/release/libaihub_$p.so" /out/plugins/; done

FROM debian:${DEBIAN}-slim
# No ca-certificates: aihub verifies upstream and Postgres TLS against the web PKI roots
# compiled into it (webpki-roots), never the system store. bash (for the healthcheck),
# cmp and coreutils are in the base image.
RUN set -eux; \
    groupadd --gid 10001 aihub; \
    useradd --uid 10001 --gid aihub --home-dir /var/lib/aihub --no-create-home \
        --shell /usr/sbin/nologin aihub; \
    mkdir -p /var/lib/aihub/plugins /etc/aihub; \
    chown -R aihub:aihub /var/lib/aihub
COPY --from=build /out/aihub /usr/local/bin/aihub
# The shipped plugins; the entry point copies them into the plugin volume at each start.
COPY --from=build /out/plugins/ /usr/lib/aihub/plugins/
COPY --chmod=0755 deploy/docker-entrypoint.sh /usr/local/bin/aihub-entrypoint
COPY --chmod=0755 deploy/healthcheck.sh /usr/local/bin/aihub-healthcheck

# The data dir holds the SQLite database (single instance), master.key when
# AIHUB_MASTER_KEY is unset, aihub.addr and loaded/ (private copies of the plugins);
# plugins.dir defaults to <data_dir>/plugins, a volume of its own so several instances
# can share one.
ENV AIHUB_STORAGE__DATA_DIR=/var/lib/aihub \
    AIHUB_SERVER__LISTEN=0.0.0.0:8090
VOLUME ["/var/lib/aihub", "/var/lib/aihub/plugins"]
# ./aihub.toml is read from the working directory: mount one at /etc/aihub/aihub.toml.
WORKDIR /etc/aihub
USER aihub:aihub
EXPOSE 8090
# Liveness only (the process answers): /readyz, which also needs the database, is for the
# load balancer to route by.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 CMD ["aihub-healthcheck"]
# SIGTERM (docker stop): aihub lets in-flight requests finish for server.shutdown_grace_ms
# (30 s) and writes its queued call records: give `docker stop -t` / stop_grace_period more.
STOPSIGNAL SIGTERM
ENTRYPOINT ["aihub-entrypoint"]
CMD ["serve"]
