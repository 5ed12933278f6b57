# syntax=docker/dockerfile:1
# Build: no protoc needed (protos compile with protox).
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY proto proto
COPY migrations migrations
COPY policy policy
COPY src src
RUN cargo build --release --locked --bin leadgate

# Run: a small image, a numeric non-root user, nothing written outside the data volume.
FROM debian:bookworm-slim
COPY --from=builder /src/target/release/leadgate /usr/local/bin/leadgate
USER 65532:65532
WORKDIR /data
ENV LEADGATE_LISTEN=0.0.0.0:50051 \
    LEADGATE_LOG_FORMAT=json
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/leadgate"]
CMD ["serve"]
