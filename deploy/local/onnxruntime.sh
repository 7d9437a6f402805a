#!/usr/bin/env bash
# Fetches the pinned ONNX Runtime shared library (CPU, linux x86_64) into
# .local/onnxruntime/lib/ and prints the path of libonnxruntime.so.
#
# The version is the one github.com/yalue/onnxruntime_go v1.27.0 is built
# against: its onnxruntime_c_api.h is ORT_API_VERSION 24, i.e. ONNX Runtime
# 1.24.1 (see the "Note on onnxruntime Library Versions" in its README).
# The library comes from the official PyPI wheel, checked against a pinned sha256.
#
#   bash deploy/local/onnxruntime.sh        # prints .../.local/onnxruntime/lib/libonnxruntime.so
#
# Idempotent: does nothing but print the path when the library is in place.
set -euo pipefail

ORT_VERSION=1.24.1
WHEEL="onnxruntime-${ORT_VERSION}-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
WHEEL_SHA256=1cabe71ca14dcfbf812d312aab0a704507ac909c137ee6e89e4908755d0fc60e

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="$ROOT/.local/onnxruntime"
LIB="$DIR/lib/libonnxruntime.so"
STAMP="$DIR/lib/.version"

log() { printf 'onnxruntime: %s\n' "$*" >&2; }
die() {
  printf 'onnxruntime: ERROR: %s\n' "$*" >&2
  exit 1
}

[ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] || die "only linux x86_64 is pinned here (got $(uname -s)-$(uname -m))"

if [ -f "$LIB" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$ORT_VERSION $WHEEL_SHA256" ]; then
  echo "$LIB"
  exit 0
fi

mkdir -p "$DIR/download"
whl="$DIR/download/$WHEEL"

have_sha() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$WHEEL_SHA256" ]; }

if ! have_sha "$whl"; then
  rm -f "$whl"
  log "downloading $WHEEL"
  pip=()
  if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
  fi
  if ((${#pip[@]})); then
    # pip resolves the wheel from the configured index (PyPI or a mirror).
    "${pip[@]}" download "onnxruntime==${ORT_VERSION}" --no-deps --only-binary=:all: \
      --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 \
      --python-version 3.11 --implementation cp --abi cp311 \
      --dest "$DIR/download" --quiet >&2 || log "pip download failed; trying PyPI directly"
  fi
  if ! have_sha "$whl"; then
    # No pip (or it failed): find the wheel's URL on PyPI's simple index.
    command -v curl >/dev/null 2>&1 || die "neither pip nor curl is available to download $WHEEL"
    url="$(curl -fsSL --retry 3 https://pypi.org/simple/onnxruntime/ |
      grep -o "https://[^\"#]*/${WHEEL}" | head -n1)" || true
    [ -n "$url" ] || die "could not find $WHEEL on https://pypi.org/simple/onnxruntime/"
    curl -fsSL --retry 3 -o "$whl.part" "$url" || die "download of $url failed"
    mv -f "$whl.part" "$whl"
  fi
  have_sha "$whl" || die "sha256 of $whl is $(sha256sum "$whl" | cut -d' ' -f1), want $WHEEL_SHA256"
fi

tmp="$(mktemp -d "$DIR/extract.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if command -v unzip >/dev/null 2>&1; then
  unzip -q -o "$whl" 'onnxruntime/capi/libonnxruntime.so*' -d "$tmp"
else
  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); [z.extract(n, sys.argv[2]) for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so")]' "$whl" "$tmp"
fi
so="$tmp/onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}"
[ -f "$so" ] || die "the wheel holds no onnxruntime/capi/libonnxruntime.so.${ORT_VERSION}"

mkdir -p "$DIR/lib"
# The versioned file (the name onnxruntime_go's README asks for), and the
# SONAME and plain names as links to it.
install -m 0755 "$so" "$DIR/lib/libonnxruntime.so.${ORT_VERSION}"
ln -sfn "libonnxruntime.so.${ORT_VERSION}" "$DIR/lib/libonnxruntime.so.1"
ln -sfn "libonnxruntime.so.${ORT_VERSION}" "$LIB"
echo "$ORT_VERSION $WHEEL_SHA256" >"$STAMP"
log "installed ONNX Runtime $ORT_VERSION"
echo "$LIB"
