#!/usr/bin/env bash
# Installs the system packages wardstream builds and tests need (Debian 12):
# libav* headers for the RTSP decoder (cgo), ffmpeg for synthetic camera
# streams, Chromium for the dashboard's browser test; and the pinned ONNX
# Runtime library. Idempotent: does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/../.."
need=()
for p in pkg-config ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev chromium; do
  # Installed, not merely known: a removed package keeps its config files
  # and `dpkg -s` still succeeds for it.
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || need+=("$p")
done
if ((${#need[@]})); then
  echo "deps: installing ${need[*]}"
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || { echo "deps: ERROR: not root and no sudo to install ${need[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
bash deploy/local/onnxruntime.sh >/dev/null
