#!/usr/bin/env bash
# Runs the node the way Deploy/alexandria-node.service does, as far as a machine without systemd as PID 1 allows,
# and checks it serves a fetch, answers `status` and stops cleanly on SIGTERM within TimeoutStopSec.
#
# From the unit it reads User=, ExecStart=, LimitNOFILE= and TimeoutStopSec=, and reproduces, in a private mount
# namespace (nothing on the machine changes except that the unit's user is created when missing):
#   - the paths: the binary at ExecStart's path (/usr/local/bin/alexandria), the home at /var/lib/alexandria made
#     0755 by root and given to the user (as useradd --create-home and StateDirectory= make it), initialised by
#     the user as the unit's comment says;
#   - User=/Group=: setpriv to the user and its groups; no capabilities (inheritable, ambient and bounding sets
#     cleared; the unit grants none), NoNewPrivileges=;
#   - ProtectSystem=strict with ReadWritePaths=: every mount read-only except the home; PrivateTmp=: a fresh
#     /tmp; ProtectHome=: empty read-only /home and /root; LimitNOFILE=: prlimit.
# Not reproduced (needs systemd): RestrictAddressFamilies= (seccomp), ProtectKernelTunables=, ProtectControlGroups=,
# Restart=. Needs root (mount namespaces, setpriv to another user); as anyone else it says so and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
unit=Deploy/alexandria-node.service
if [ "$(id -u)" -ne 0 ]; then
    echo "unit-sandbox: skipped (needs root for a mount namespace and to switch to the unit's user)"
    exit 0
fi
setting() { sed -n "s/^$1=//p" "$unit" | tail -1; }
user="$(setting User)"
exec_start="$(setting ExecStart)"
nofile="$(setting LimitNOFILE)"
stop_timeout="$(setting TimeoutStopSec)"
binary_path="${exec_start%% *}"
home="$(sed -n 's/.*--home \([^ ]*\).*/\1/p' <<<"$exec_start")"
[ -n "$user" ] && [ "$user" != root ] || { echo "unit-sandbox: $unit must set User= to a user that is not root"; exit 1; }
[ -n "$home" ] || { echo "unit-sandbox: ExecStart= in $unit names no --home"; exit 1; }
id -u "$user" >/dev/null 2>&1 || useradd --system --no-create-home --home-dir "$home" --shell /usr/sbin/nologin "$user"
built="$(swift build --show-bin-path)/alexandria"
[ -x "$built" ] || swift build --product alexandria
port=$((20000 + RANDOM % 30000))

export ALEXANDRIA_UNIT_USER="$user" ALEXANDRIA_UNIT_HOME="$home" ALEXANDRIA_UNIT_BINARY="$binary_path" \
    ALEXANDRIA_UNIT_EXEC="$exec_start" ALEXANDRIA_UNIT_NOFILE="${nofile:-1024}" ALEXANDRIA_UNIT_PORT="$port" \
    ALEXANDRIA_UNIT_STOP="${stop_timeout:-90}" ALEXANDRIA_BUILT="$built"
unshare -m --propagation private bash -euo pipefail -c '
    user=$ALEXANDRIA_UNIT_USER home=$ALEXANDRIA_UNIT_HOME
    # The paths the unit uses, on tmpfs in this namespace only.
    mount -t tmpfs -o mode=0755 tmpfs "$(dirname "$ALEXANDRIA_UNIT_BINARY")"
    install -m 0755 "$ALEXANDRIA_BUILT" "$ALEXANDRIA_UNIT_BINARY"
    mount -t tmpfs -o mode=0755 tmpfs "$(dirname "$home")"
    mkdir -m 0755 "$home"
    chown "$user:" "$home"
    mount --bind "$home" "$home"
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    as_user() {
        setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=-all --ambient-caps=-all \
            --bounding-set=-all --no-new-privs env HOME="$home" "$@"
    }
    as_user "$ALEXANDRIA_UNIT_BINARY" init --home "$home" >/dev/null
    sed -i "s/^listen = .*/listen = \"127.0.0.1:$ALEXANDRIA_UNIT_PORT\"/" "$home/config.toml"
    head -c 3000000 /dev/urandom >/tmp/weights.bin
    chmod 0644 /tmp/weights.bin
    address="sha256:$(sha256sum /tmp/weights.bin | cut -d" " -f1)"
    as_user "$ALEXANDRIA_UNIT_BINARY" add /tmp/weights.bin --home "$home" >/dev/null
    # ProtectSystem=strict, ReadWritePaths=home, ProtectHome=true.
    for m in /home /root; do [ -d "$m" ] && mount -t tmpfs -o ro,mode=0755 tmpfs "$m"; done
    findmnt -rn -o TARGET | while read -r m; do
        case "$m" in /proc*|/sys*|/dev*|/tmp|"$home") continue ;; esac
        mount -o remount,bind,ro "$m" 2>/dev/null || true
    done
    touch /usr/alexandria-probe 2>/dev/null && { echo "unit-sandbox: / is still writable"; exit 1; }
    # ExecStart=, as the unit runs it.
    read -r -a exec_start <<<"$ALEXANDRIA_UNIT_EXEC"
    nofile=$ALEXANDRIA_UNIT_NOFILE
    if ! prlimit --nofile="$nofile" true 2>/dev/null; then
        # Raising the hard limit needs CAP_SYS_RESOURCE, which some CI containers drop even for root.
        echo "unit-sandbox: cannot raise the file limit to LimitNOFILE=$nofile here; using the hard limit $(ulimit -Hn)"
        nofile=$(ulimit -Hn)
    fi
    prlimit --nofile="$nofile" \
        setpriv --reuid="$user" --regid="$user" --init-groups --inh-caps=-all --ambient-caps=-all \
        --bounding-set=-all --no-new-privs env HOME="$home" "${exec_start[@]}" 2>/tmp/node.log &
    node=$!
    for _ in $(seq 100); do grep -q listening /tmp/node.log && break; sleep 0.1; done
    grep -q listening /tmp/node.log || { cat /tmp/node.log; echo "unit-sandbox: the node did not start"; exit 1; }
    status=$(cat /proc/$node/status)
    grep -q "^Uid:[[:space:]]$(id -u "$user")[[:space:]]" <<<"$status" || { echo "unit-sandbox: wrong uid"; exit 1; }
    grep -q "^CapEff:[[:space:]]0000000000000000" <<<"$status" || { echo "unit-sandbox: capabilities left"; exit 1; }
    grep -q "^NoNewPrivs:[[:space:]]1" <<<"$status" || { echo "unit-sandbox: no_new_privs not set"; exit 1; }
    # A fetch from outside the node (a client of its own, unprivileged too), over an accepted connection.
    mkdir -m 0777 /tmp/client
    setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs \
        env HOME=/tmp/client sh -c "\"\$0\" init --home /tmp/client/home >/dev/null &&
            \"\$0\" fetch $address -o /tmp/client/out.bin --peer 127.0.0.1:$ALEXANDRIA_UNIT_PORT --home /tmp/client/home" \
        "$ALEXANDRIA_UNIT_BINARY" >/dev/null || { cat /tmp/node.log; echo "unit-sandbox: the fetch failed"; exit 1; }
    cmp -s /tmp/weights.bin /tmp/client/out.bin || { echo "unit-sandbox: fetched bytes differ"; exit 1; }
    as_user "$ALEXANDRIA_UNIT_BINARY" status --home "$home" >/dev/null
    kill -TERM "$node"
    for _ in $(seq $((ALEXANDRIA_UNIT_STOP * 10))); do kill -0 "$node" 2>/dev/null || break; sleep 0.1; done
    code=0
    wait "$node" || code=$?
    [ "$code" -eq 0 ] || { cat /tmp/node.log; echo "unit-sandbox: the node exited with $code on SIGTERM"; exit 1; }
    grep -qi "warning\|error" /tmp/node.log && { cat /tmp/node.log; echo "unit-sandbox: the node warned"; exit 1; }
    echo "unit-sandbox: $ALEXANDRIA_UNIT_EXEC as $user, no capabilities, read-only system, LimitNOFILE=$nofile: served a fetch, answered status, stopped cleanly"
'
