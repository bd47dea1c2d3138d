#!/usr/bin/env bash
# Kills (SIGKILL, as a crash) or starts again only the S3 proxy of an engine that ../shared/peers/swift_s3.sh started
# in DIR, recording the new one in DIR/run/proxy.pid the way swift_s3.sh does, so that its `stop` still stops it.
# Swift's servers bind with SO_REUSEADDR, so the proxy is back within seconds, where a restart of the whole engine
# waits out TIME_WAIT on its ports (swift_s3.sh checks them without SO_REUSEADDR): the restart tests use this
# (Tests/s3.sh sets S3_PROXY_CONTROL="<this script> DIR").
#   Tests/s3-proxy.sh stop DIR | start DIR
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: s3-proxy.sh stop DIR | start DIR" >&2; exit 2; }
d=$2

# The start time of a live process (field 22 of /proc/PID/stat), as swift_s3.sh records it.
proc_start() { local line rest; { read -r line < "/proc/$1/stat"; } 2>/dev/null || return 1
  rest=${line##*) }; set -- $rest; [ "$1" != Z ] || return 1; echo "${20}"; }

case "$1" in
stop)
    read -r pid st < "$d/run/proxy.pid" || { echo "s3-proxy: no $d/run/proxy.pid" >&2; exit 1; }
    [ "$(proc_start "$pid" || true)" = "$st" ] || { echo "s3-proxy: the proxy in $d is not running" >&2; exit 1; }
    pids="$pid"
    for s in /proc/[0-9]*/stat; do
        { read -r line < "$s"; } 2>/dev/null || continue
        rest=${line##*) }; set -- $rest
        if [ "$2" = "$pid" ]; then c=${s#/proc/}; pids="$pids ${c%/stat}"; fi
    done
    kill -KILL $pids 2>/dev/null || true
    for _ in $(seq 1 200); do
        alive=0
        for p in $pids; do proc_start "$p" > /dev/null && alive=1; done
        [ "$alive" = 0 ] && exit 0
        sleep 0.05
    done
    echo "s3-proxy: the proxy in $d did not die" >&2; exit 1
    ;;
start)
    setsid /usr/bin/swift-proxy-server "$d/etc/proxy-server.conf" -v >> "$d/log/proxy.log" 2>&1 < /dev/null &
    pid=$!
    st=""
    for _ in $(seq 1 100); do st=$(proc_start "$pid") && break; sleep 0.05; done
    echo "$pid $st" > "$d/run/proxy.pid"
    port=$(sed -n 's/^bind_port = //p' "$d/etc/proxy-server.conf" | head -n 1)
    for _ in $(seq 1 240); do
        /usr/bin/python3 -c "import urllib.request, sys
sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$port/healthcheck', timeout=2).read() == b'OK' else 1)" \
            2> /dev/null && exit 0
        kill -0 "$pid" 2>/dev/null || { echo "s3-proxy: the proxy exited (log: $d/log/proxy.log)" >&2; exit 1; }
        sleep 0.25
    done
    echo "s3-proxy: the proxy did not answer within 60 s (log: $d/log/proxy.log)" >&2; exit 1
    ;;
*) echo "usage: s3-proxy.sh stop DIR | start DIR" >&2; exit 2 ;;
esac
