#!/usr/bin/env bash
# Installs the system packages wardstream builds and tests need (Debian 12),
# and the pinned ONNX Runtime library. Idempotent: does nothing when present.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for p in pkg-config ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ -f deploy/local/onnxruntime.sh ]; then
  bash deploy/local/onnxruntime.sh >/dev/null
fi
# Headless Chromium for the api dashboard's browser test (connectors/api).
dpkg -s chromium >/dev/null 2>&1 || { echo "deps: installing chromium"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }
