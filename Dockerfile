# syntax=docker/dockerfile:1
#
# leadgate's container image.
#
#   docker build -t leadgate:latest .
#   docker run --rm -p 50051:50051 -p 9090:9090 \
#     -e LEADGATE_DATABASE_URL=postgres://leadgate@db.internal:5432/leadgate \
#     -e LEADGATE_AUTH_TOKENS='web-forms:submitter:<sha256>' leadgate:latest
#
# The server listens on 0.0.0.0 here, so it refuses to start without credentials
# (--auth-config / LEADGATE_AUTH_CONFIG or LEADGATE_AUTH_TOKENS) unless
# LEADGATE_ALLOW_UNAUTHENTICATED=true says it is on purpose.

# ---- Build: only the Rust toolchain is needed (protos compile with protox, no protoc; rustls and
# bundled SQLite, no system libraries). The slim image's gcc builds the C parts of ring and SQLite.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY migrations migrations
COPY policy policy
COPY src src
# The benches are declared in Cargo.toml, and bench/ is a member of its workspace: cargo cannot
# load the manifest without them.
COPY benches benches
COPY bench bench
# The registry cache only saves downloads between builds; the build itself starts clean.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --profile dist --locked --bin leadgate

# ---- Run: distroless (glibc, CA certificates, no shell, no package manager), numeric non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
# The dist profile: a release build stripped of debug information and symbols.
COPY --from=builder /src/target/dist/leadgate /usr/local/bin/leadgate
# 65532 is distroless's "nonroot"; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
# The only place the process writes: the default sqlite://leadgate.db lands here. With PostgreSQL
# nothing is written at all, so the root filesystem can be mounted read-only. WORKDIR comes after
# USER so that BuildKit creates /data owned by 65532 (mount a volume there to keep a SQLite file).
WORKDIR /data
ENV LEADGATE_LISTEN=0.0.0.0:50051 \
    LEADGATE_METRICS_LISTEN=0.0.0.0:9090 \
    LEADGATE_LOG_FORMAT=json
# 50051: gRPC (and grpc.health.v1.Health); 9090: Prometheus /metrics over HTTP.
EXPOSE 50051 9090
# Healthy = the gRPC health check of the overall service "" answers SERVING (migrations applied and
# the database answering); `leadgate health` exits 0 then, 1 otherwise. Exec form: there is no
# shell. Kubernetes ignores this and uses its own gRPC probes (deploy/kubernetes).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/leadgate", "health", "--server", "http://127.0.0.1:50051"]
ENTRYPOINT ["/usr/local/bin/leadgate"]
CMD ["serve"]
