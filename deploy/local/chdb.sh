#!/usr/bin/env bash
# Fetches chDB (ClickHouse built as a library, from PyPI) into
# .local/chdb/site and prints that path. The integration tests run the
# modern-server variant of the schema on it (DateTime64, LowCardinality,
# CODECs, TTL): Debian ships only ClickHouse 18.16, so without this the
# modern DDL would be checked as text only.
#
#   bash deploy/local/chdb.sh        # prints .../.local/chdb/site
#
# Pinned: chdb-core 26.9.0 (ClickHouse 26.9), an abi3 wheel for CPython >= 3.9,
# checked against its sha256. Its pandas/pyarrow dependencies are not needed
# for plain SQL and are not installed. Idempotent.
set -euo pipefail

VERSION=26.9.0
WHEEL="chdb_core-${VERSION}-cp39-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
WHEEL_SHA256=707e2ec3fe0f7953bac97942eaeb7a1ed1d66b1e56ecef3f0aa2130f61f6e735

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.local/chdb"
SITE="$DIR/site"
STAMP="$SITE/.version"

log() { printf 'chdb: %s\n' "$*" >&2; }
die() {
  printf 'chdb: ERROR: %s\n' "$*" >&2
  exit 1
}

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "only linux x86_64 is pinned here (got $(uname -s)-$(uname -m))"
command -v python3 >/dev/null 2>&1 || die "python3 is needed"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION $WHEEL_SHA256" ]; then
  echo "$SITE"
  exit 0
fi

mkdir -p "$DIR/download"
whl="$DIR/download/$WHEEL"
have_sha() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$WHEEL_SHA256" ]; }

if ! have_sha "$whl"; then
  rm -f "$whl"
  log "downloading $WHEEL"
  if python3 -m pip --version >/dev/null 2>&1; then
    python3 -m pip download "chdb-core==${VERSION}" --no-deps --only-binary=:all: \
      --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp \
      --dest "$DIR/download" --quiet >&2 || log "pip download failed; trying PyPI directly"
  fi
  if ! have_sha "$whl"; then
    command -v curl >/dev/null 2>&1 || die "neither pip nor curl is available to download $WHEEL"
    url="$(curl -fsSL --retry 3 https://pypi.org/simple/chdb-core/ | grep -o "https://[^\"#]*/${WHEEL}" | head -n1)" || true
    [ -n "$url" ] || die "could not find $WHEEL on https://pypi.org/simple/chdb-core/"
    curl -fsSL --retry 3 -o "$whl.part" "$url" || die "download of $url failed"
    mv -f "$whl.part" "$whl"
  fi
  have_sha "$whl" || die "sha256 of $whl is $(sha256sum "$whl" | cut -d' ' -f1), want $WHEEL_SHA256"
fi

rm -rf "$SITE.tmp"
python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$whl" "$SITE.tmp"
PYTHONPATH="$SITE.tmp" python3 -c 'import chdb' || die "the unpacked wheel does not import"
rm -rf "$SITE"
mv "$SITE.tmp" "$SITE"
rm -f "$whl" # 180 MB; the unpacked copy is what the tests use
echo "$VERSION $WHEEL_SHA256" >"$STAMP"
log "installed chDB $VERSION"
echo "$SITE"
