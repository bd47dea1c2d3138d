#!/usr/bin/env bash
# Checks Deploy/alexandria-node.service with systemd's own tools, and runs the binary under the limits the unit sets
# that could break a Swift program at run time. Needs root (it installs the binary where the unit says, and drops to
# an unprivileged user). Does not need systemd running as PID 1.
#
#   bash Deploy/systemd-check.sh [BINARY]     default BINARY: .build/release/alexandria, else .build/debug/alexandria
#
# 1. `systemd-analyze verify` on the unit with the binary at /usr/local/bin/alexandria (installed for the check and
#    removed afterwards when it was not there before; an existing one is left alone). Any output is a failure.
# 2. `systemd-analyze security --offline=true`: prints the exposure score, fails above MAX_EXPOSURE.
# 3. The node as the unit runs it, minus systemd: an unprivileged user (nobody), no capabilities, no new privileges,
#    umask 0077, and no writable-and-executable memory (PR_SET_MDWE, the kernel's form of MemoryDenyWriteExecute;
#    a self-test shows the limit refuses a W+X mapping). It initialises its home (ExecStartPre), serves a file to a
#    client that fetches it by hash over TCP, leaves every file of its home private, and stops on SIGTERM with exit 0.
# Prints `name: value unit` figures. Talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
unit=Deploy/alexandria-node.service
die() { echo "systemd-check.sh: error: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"

bin=${1:-}
if [ -z "$bin" ]; then
    for candidate in .build/release/alexandria .build/debug/alexandria; do
        [ -x "$candidate" ] && { bin=$candidate; break; }
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no alexandria binary (build one, or pass its path)"
bin=$(readlink -f "$bin")

if ! command -v systemd-analyze >/dev/null; then
    echo "# installing systemd (for systemd-analyze; nothing is upgraded)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade systemd >/dev/null
fi
command -v cc >/dev/null || die "no C compiler (cc) for the MemoryDenyWriteExecute check"

work=$(mktemp -d /tmp/alexandria-systemd.XXXXXX)
installed=""
node=""
cleanup() {
    local rc=$?
    if [ -n "$node" ]; then
        kill -TERM "$node" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$node" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$node" 2>/dev/null || true
    fi
    [ -z "$installed" ] || rm -f "$installed"
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"

# ---------- 1. verify ----------
target=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
[ "$target" = /usr/local/bin/alexandria ] || die "the unit's ExecStart is $target, not /usr/local/bin/alexandria"
if [ ! -e "$target" ]; then
    install -m 0755 "$bin" "$target"
    installed=$target
else
    echo "# $target exists already; verifying against it"
fi
out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out"; die "systemd-analyze verify failed"; }
[ -z "$out" ] || { echo "$out"; die "systemd-analyze verify printed warnings"; }
echo "# systemd-analyze verify $unit: clean ($(systemd-analyze --version | head -1))"

# ---------- 2. security ----------
score=$(systemd-analyze security --offline=true "$unit" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || die "no score from systemd-analyze security"
echo "systemd_security_exposure: $score (0 = most locked down, 10 = unprotected)"
awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN{exit !(s <= m)}' || die "exposure $score is above $MAX_EXPOSURE"

# ---------- 3. the node under the unit's limits ----------
grep -q '^MemoryDenyWriteExecute=true' "$unit" || die "the unit no longer sets MemoryDenyWriteExecute"
grep -q '^UMask=0077' "$unit" || die "the unit no longer sets UMask=0077"
cat >"$work/mdwe.c" <<'EOF'
// mdwe PROGRAM ARGS...: turn on the kernel's memory-deny-write-execute for this process and what it executes, then
// exec PROGRAM. mdwe --self-test: exit 0 only if a writable and executable mapping is then refused.
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0L, 0L, 0L) != 0) { perror("prctl(PR_SET_MDWE)"); return 77; }
    if (strcmp(argv[1], "--self-test") == 0) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? 0 : 1;
    }
    execv(argv[1], argv + 1);
    perror("execv");
    return 127;
}
EOF
cc -O2 -o "$work/mdwe" "$work/mdwe.c"
chmod 0755 "$work" "$work/mdwe"
set +e
"$work/mdwe" --self-test
selftest=$?
set -e
[ "$selftest" != 77 ] || die "this kernel has no PR_SET_MDWE (Linux >= 6.3); cannot check MemoryDenyWriteExecute"
[ "$selftest" = 0 ] || die "PR_SET_MDWE did not refuse a W+X mapping"
echo "# PR_SET_MDWE refuses a writable and executable mapping (self-test)"

home=$work/home
mkdir -m 0700 "$home"
chown nobody:nogroup "$home"
as_unit=(setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all
    sh -c 'umask 0077; exec "$@"' sh "$work/mdwe" "$bin")
as_unit() {  # the unit's user, capabilities, no_new_privs, umask and MemoryDenyWriteExecute
    setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all \
        sh -c 'umask 0077; exec "$@"' sh "$work/mdwe" "$bin" "$@"
}
as_unit init --home "$home" >/dev/null
head -c 5000000 /dev/urandom >"$work/weights.bin"
chmod 0644 "$work/weights.bin"
as_unit add "$work/weights.bin" --home "$home" >/dev/null
weights=$(sha256sum "$work/weights.bin" | cut -d' ' -f1)
port=$((20000 + RANDOM % 20000))
# Not through the function: $! must be the node itself (setpriv, sh and mdwe each exec the next).
"${as_unit[@]}" node run --home "$home" --listen "127.0.0.1:$port" 2>"$work/node.log" &
node=$!
for _ in $(seq 120); do grep -q listening "$work/node.log" && break; sleep 0.25; done
grep -q listening "$work/node.log" || { cat "$work/node.log"; die "the node did not start under the unit's limits"; }
"$bin" init --home "$work/client" >/dev/null
"$bin" fetch "sha256:$weights" -o "$work/fetched" --peer "127.0.0.1:$port" --home "$work/client" >/dev/null \
    || { tail -5 "$work/node.log"; die "fetch from the node failed"; }
[ "$(sha256sum "$work/fetched" | cut -d' ' -f1)" = "$weights" ] || die "fetched bytes differ"
kill -0 "$node" 2>/dev/null || { tail -5 "$work/node.log"; die "the node died after serving"; }
echo "# the node (uid nobody, no capabilities, MDWE, umask 0077) served sha256:${weights:0:16}… to a client"
open_files=$(find "$home" -perm /077 ! -type l | sed "s|^$home|~|" | head -5)
[ -z "$open_files" ] || die "files in the home readable by others despite umask 0077: $open_files"
echo "# every file in the home is private to the node's user"
kill -TERM "$node"
rc=0
wait "$node" || rc=$?
node=""
[ "$rc" = 0 ] || { tail -5 "$work/node.log"; die "the node exited $rc on SIGTERM"; }
grep -q stopped "$work/node.log" || die "no graceful stop in the log"
echo "# stopped on SIGTERM with exit 0"
echo "# systemd check ok"
