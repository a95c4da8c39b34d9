#!/bin/bash
# The image's HEALTHCHECK: GET /healthz over bash's /dev/tcp, so the image needs no curl.
# The port is read from <data_dir>/aihub.addr, which aihub writes once it listens (and
# removes on a clean stop), so any `server.listen` works. Exit 0 healthy, 1 not.
set -u
data_dir="${AIHUB_STORAGE__DATA_DIR:-/var/lib/aihub}"
addr="$(cat "$data_dir/aihub.addr" 2>/dev/null)" || exit 1
port="${addr##*:}"
host="${addr%:*}"
host="${host#[}"
host="${host%]}"
case "$host" in
    0.0.0.0 | "") host=127.0.0.1 ;;
    ::) host=::1 ;;
esac
exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 5 status <&3 || exit 1
case "$status" in
    "HTTP/1.1 200"*) exit 0 ;;
    *) exit 1 ;;
esac
