# Sourced by Tests/run.sh and .ci/run: `as_unprivileged CMD ARGS...` runs a command the way a deployed node runs,
# not as root. Root hides mistakes a real deployment hits at once (a socket option only CAP_NET_ADMIN may set, a
# file mode that only root can get past, a port below 1024), so the tests that start `alexandria` processes must
# not run as root.
#
# As root: the command runs as $ALEXANDRIA_CI_USER (default `alexandria-ci`, created as a system user when missing;
# `nobody` if it cannot be created), with no supplementary groups, no capabilities (inheritable, ambient and
# bounding sets cleared), no_new_privs, and a fresh HOME and TMPDIR of its own that are removed afterwards.
# As anyone else: the command runs as it is.
#
# `ALEXANDRIA_CI_UID` is exported to the command: the uid it runs as, so tests can check they really are
# unprivileged.

# The user the tests run as (root only): $ALEXANDRIA_CI_USER, created when missing, else nobody.
unprivileged_user() {
    local user="${ALEXANDRIA_CI_USER:-alexandria-ci}"
    if ! id -u "$user" >/dev/null 2>&1; then
        if ! useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user" 2>/dev/null
        then
            echo "as_unprivileged: cannot create user $user; using nobody" >&2
            user=nobody
        fi
    fi
    echo "$user"
}

as_unprivileged() {
    if [ "$(id -u)" -ne 0 ]; then
        ALEXANDRIA_CI_UID="$(id -u)" "$@"
        return
    fi
    local user
    user="$(unprivileged_user)"
    local uid gid
    uid="$(id -u "$user")"
    gid="$(id -g "$user")"
    local scratch
    scratch="$(mktemp -d /tmp/alexandria-unprivileged.XXXXXX)"
    chown "$uid:$gid" "$scratch"
    chmod 0700 "$scratch"
    _unprivileged_grant_access "$uid" "$gid" "$1"
    local status=0
    setpriv --reuid="$uid" --regid="$gid" --clear-groups --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
        --no-new-privs \
        env HOME="$scratch" TMPDIR="$scratch" USER="$user" LOGNAME="$user" ALEXANDRIA_CI_UID="$uid" "$@" \
        || status=$?
    rm -rf "$scratch"
    return "$status"
}

# The user must reach the checkout (the test bundle reads Protocol/ vectors next to the sources, and the tests start
# .build/…/alexandria). A clone under a private directory such as /root is not reachable: say so, and let the user
# through the directories on the way with an ACL (or o+x where setfacl is missing), never granting read.
_unprivileged_grant_access() {
    local uid="$1" gid="$2" target="$3"
    [ -e "$target" ] || target="$PWD"
    setpriv --reuid="$uid" --regid="$gid" --clear-groups test -r "$PWD/Package.swift" -a -x "$target" && return
    echo "as_unprivileged: uid $uid cannot reach $PWD; letting it traverse the directories above" >&2
    local dir="$PWD"
    while [ "$dir" != "/" ]; do
        if command -v setfacl >/dev/null 2>&1; then
            setfacl -m "u:$uid:x" "$dir"
        else
            chmod o+x "$dir"
        fi
        dir="$(dirname "$dir")"
    done
}
