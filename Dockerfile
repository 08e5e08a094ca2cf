# The payledger binary for docker-compose.yml. (Not built on the development machines, which
# have no Docker engine; `scripts/demo` is the native path.)
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --locked --release --bin payledger

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libssl3 zlib1g ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 payledger
COPY --from=build /src/target/release/payledger /usr/local/bin/payledger
USER payledger
ENTRYPOINT ["payledger"]
