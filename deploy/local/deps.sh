#!/usr/bin/env bash
# Installs the system packages wardstream builds and tests need (Debian 12):
# libav* headers for the RTSP decoder (cgo), ffmpeg for synthetic camera
# streams, Chromium for the dashboard's browser test; and the pinned ONNX
# Runtime library. Idempotent: does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for p in pkg-config ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
bash deploy/local/onnxruntime.sh >/dev/null
