#!/usr/bin/env bash
# Installs the packaging tools into ~/.cargo/bin unless the pinned versions are already there.
# Idempotent; scripts/ensure-test-deps and packaging/build.sh call it.
#
# Why these versions: cargo-deb 3.8.0 and cargo-generate-rpm 0.21.1 were the newest on
# crates.io when the packages were written (both build with Rust 1.85+). `--locked` builds them
# with the dependency versions their authors tested. A fresh build of both takes about
# 5-8 minutes on 2 cores.
set -euo pipefail

CARGO_DEB_VERSION=3.8.0
CARGO_GENERATE_RPM_VERSION=0.21.1

installed() { # name version
    cargo install --list 2>/dev/null | grep -qx "$1 v$2:"
}

ensure() { # name version
    if installed "$1" "$2"; then
        echo "$1: v$2 installed"
    else
        echo "$1: installing v$2 (cargo install --locked)"
        cargo install "$1" --version "$2" --locked
    fi
}

ensure cargo-deb "$CARGO_DEB_VERSION"
ensure cargo-generate-rpm "$CARGO_GENERATE_RPM_VERSION"
