#!/usr/bin/env bash
# Installs the `tansu` Kafka-protocol broker that skiff-output-kafka's tests and benchmark run
# against, unless it is already there. Idempotent; CI calls it before the tests.
#
# Why this version and these features: tansu 0.6.0 works with librdkafka >= 2.1 (the rdkafka
# crate's bundled copy); its memory and SQLite storage engines need `dynostore,libsql`.
# A fresh build takes about 12-20 minutes on 2 cores.
set -euo pipefail

if command -v tansu >/dev/null 2>&1; then
    echo "tansu: $(command -v tansu)"
    exit 0
fi
bin="${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
if [ -x "$bin" ]; then
    echo "tansu: $bin"
    exit 0
fi
echo "tansu: not found; installing (cargo install tansu 0.6.0, takes a while)"
cargo install tansu --version 0.6.0 --locked --features dynostore,libsql
