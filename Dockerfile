# The wecom-archive binary in a slim image. Multi-stage: build with the full Rust toolchain, ship only the
# binary on Debian slim. Build: `docker build -t wecom-archive .`  (docker-compose.yml does it for you).

# ---- build ------------------------------------------------------------------------------------------------
FROM rust:1.89-slim-bookworm AS build
# librdkafka is built from source by rdkafka-sys (make, a C/C++ toolchain); the zstd feature links libzstd;
# aws-lc-rs builds its C core with cmake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake pkg-config perl python3 \
      libzstd-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p wecom-archive \
 && cp target/release/wecom-archive /usr/local/bin/wecom-archive

# ---- runtime ----------------------------------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libzstd1 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin wecom \
 && mkdir -p /app /data \
 && chown wecom /data
COPY --from=build /usr/local/bin/wecom-archive /usr/local/bin/wecom-archive
WORKDIR /app
USER wecom
# /metrics, /health, /ready when the config has [ops] listen = "0.0.0.0:9108"
EXPOSE 9108
ENTRYPOINT ["/usr/local/bin/wecom-archive"]
CMD ["--help"]
