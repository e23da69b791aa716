# Build: docker build -t rtpcast .
# Run:   docker run -p 5544:5544 -p 322:322 -p 5005:5005/udp -p 5006:5006/udp \
#            -v "$(pwd)/videos:/media:ro" rtpcast
# With a configuration file (rtpcast --config; command-line options win):
#            -v "$(pwd)/rtpcast.toml:/etc/rtpcast/rtpcast.toml:ro"
# RTSPS: mount a certificate and key and name them, after the image:
#            -v "$(pwd)/tls:/etc/rtpcast/tls:ro" rtpcast \
#            --tls-cert /etc/rtpcast/tls/cert.pem --tls-key /etc/rtpcast/tls/key.pem /media
# The image itself is untested here (no Docker engine on our machines); the
# file is linted (hadolint) and its promises checked by tests/service.rs.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked

FROM debian:bookworm-slim
COPY --from=build /src/target/release/rtpcast /usr/local/bin/rtpcast
COPY docker/entrypoint.sh /usr/local/bin/rtpcast-entrypoint
# curl: the HEALTHCHECK's client. setcap (libcap2-bin, removed after use)
# lets the unprivileged user bind RTSPS's port 322 (below 1024) through the
# binary's file capability; Docker's default capability set keeps
# NET_BIND_SERVICE, so do not run with --cap-drop ALL or no-new-privileges
# unless RTSPS moves to a port of 1024 or more (--rtsps-port).
# Not pinned: Debian's security updates replace exact versions, which would
# break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl libcap2-bin \
    && setcap cap_net_bind_service=+ep /usr/local/bin/rtpcast \
    && apt-get purge -y --auto-remove libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rtpcast \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home rtpcast \
    && mkdir -p /media /etc/rtpcast
VOLUME /media
# RTSP, RTSPS, the RTP/RTCP pair every session shares, the HTTP API.
EXPOSE 5544/tcp 322/tcp 5005-5006/udp 9997/tcp
# Numeric, so that a runtime checking runAsNonRoot need not resolve names.
USER 10001:10001
# The HTTP API's liveness endpoint (the API must be enabled on 9997).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:9997/health"]
ENTRYPOINT ["/usr/local/bin/rtpcast-entrypoint"]
# The API on, for the health check and for whoever publishes port 9997 (it
# can end sessions: limit it with [api_access] in the configuration file).
CMD ["--api-addr", "0.0.0.0:9997", "/media"]
