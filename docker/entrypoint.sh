#!/bin/sh
# The image's entry point: runs rtpcast with the configuration file when
# one is mounted at $RTPCAST_CONFIG (default /etc/rtpcast/rtpcast.toml),
# and with the container's arguments (by default the /media folder).
# Options on the command line take precedence over the file's keys.
set -eu
config="${RTPCAST_CONFIG:-/etc/rtpcast/rtpcast.toml}"
if [ -f "$config" ]; then
    exec rtpcast --config "$config" "$@"
fi
exec rtpcast "$@"
