#!/usr/bin/env bash
# Builds skiff's .deb and .rpm from the release binary (or, with --profile dev, from the debug
# binary the tests already built).
#
#   packaging/build.sh                      # cargo build --release, then both packages
#   packaging/build.sh --profile dev --no-build --out DIR   # what the tests run (seconds)
#   packaging/build.sh --revision 2         # package revision (default 1): skiff_0.1.0-2
#
# Output: DIR (default target/packages) holds skiff_<version>-<revision>_<arch>.deb and
# skiff-<version>-<revision>.<arch>.rpm; their paths are printed last, one per line.
# The tools are installed first (pinned versions, see ensure-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
build=1
out=target/packages
revision=1
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        --out) out="$2"; shift 2 ;;
        --revision) revision="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

./packaging/ensure-tools.sh >&2
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# The commit and date `skiff version` prints (build.rs reads them; git is used when unset).
if [ -z "${SOURCE_DATE_EPOCH:-}" ] && git rev-parse HEAD >/dev/null 2>&1; then
    SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
    export SOURCE_DATE_EPOCH
fi

if [ "$build" = 1 ]; then
    cargo build --locked -p skiff --profile "$profile" >&2
fi
mkdir -p "$out"

deb_args=(-p skiff --no-build --profile "$profile" --deb-revision "$revision" --output "$out")
# The tests' packages: quicker compression (same contents).
if [ "$profile" != release ]; then deb_args+=(--fast); fi
cargo deb "${deb_args[@]}" >&2

# cargo-generate-rpm packages binaries as they are: it gets a stripped copy (cargo-deb strips
# by itself), in a staging target directory laid out as cargo's.
profile_dir="$profile"
if [ "$profile" = dev ]; then profile_dir=debug; fi
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
stage="$out/.rpm-stage"
rm -rf "$stage"
mkdir -p "$stage/$profile_dir"
strip -o "$stage/$profile_dir/skiff" "$target_dir/$profile_dir/skiff"
cargo generate-rpm -p crates/skiff --profile "$profile" --target-dir "$stage" --output "$out" \
    --set-metadata "release = \"$revision\"" >&2
rm -rf "$stage"

version="$(cargo pkgid -p skiff | sed 's/.*[@#]//')"
ls -1 "$out"/skiff_"$version-$revision"_*.deb "$out"/skiff-"$version-$revision".*.rpm
