# Sourced by scripts/demo and scripts/test: the build environment they share.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Builds live outside the clone so that fresh clones (CI) reuse them.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/payledger-target}
# Errors from the CLI are meant for people: no Rust backtraces unless asked for.
export RUST_BACKTRACE=${PAYLEDGER_RUST_BACKTRACE:-0}

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# What building payledger needs beyond Rust: a C toolchain, OpenSSL and zlib headers for
# librdkafka, and openssl for the tests' foreign CA. Installed only when missing.
ensure_build_packages() {
    command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup"; exit 1; }
    local missing=()
    command -v cc >/dev/null || missing+=(build-essential)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v openssl >/dev/null || missing+=(openssl)
    dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
    dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}"
    fi
}

# Topics and schemas, idempotent; needs the stack up and the binary built.
prepare_kafka() {
    local bin=$1 env=$2
    "$bin" --env-file "$env" topics apply
    "$bin" --env-file "$env" schemas register
}
