#!/usr/bin/env bash
# Builds the runtime image of Deploy/Containerfile on a machine with no Docker engine and no registry, and smoke-tests
# it with a real container runtime. Needs root (mmdebstrap, buildah and podman with private storage).
#
#   bash Deploy/container.sh [BINARY]     default BINARY: .build/release/alexandria, else .build/debug/alexandria
#   env: KEEP_IMAGE=DIR (copy the oci-archive there)  MIRROR=URL  SUITE=bookworm
#        (MIRROR defaults to the first Debian mirror in this machine's apt sources: /etc/apt/sources.list,
#        /etc/apt/sources.list.d/*.list and the deb822 URIs: lines of /etc/apt/sources.list.d/*.sources)
#        ROOTFS_CACHE_DIR=DIR (reuse the Debian root filesystem between runs)  DEPS=0 (do not apt-get the tools)
#
# How (the method ../shared/peers/container_image.sh records): the Containerfile's runtime stage is
# `debian:bookworm-slim` + apt-get of the runtime libraries + a user. Here the same root filesystem comes from
# Debian's repositories through mmdebstrap (the packages that own the binary's system libraries, the user
# alexandria uid 10001 and the home /var/lib/alexandria mode 0700 added by a hook), and the rest of the runtime stage
# is taken verbatim from Deploy/Containerfile, with `FROM scratch` + `ADD rootfs.tar /` in place of its FROM and RUN
# and the given binary in place of the build stage's. So ENV, USER, VOLUME, EXPOSE, STOPSIGNAL, ENTRYPOINT and CMD are
# the shipped ones. A binary that links the Swift runtime dynamically (a debug build; the Containerfile builds with
# --static-swift-stdlib) gets those .so files at the paths it was linked against.
# `buildah bud` builds it (vfs storage, chroot isolation, storage in a temporary directory).
#
# Smoke test (podman with runc and cgroupfs, private storage; see container_image.sh for why these flags):
#   1. the image's default command: the node initialises its home on a named volume and listens, as uid 10001;
#   2. from outside: a node on the host (this binary, loopback only) publishes a small model and peers with the
#      container over the published port; the container replicates the release (wire handshake, gossip, fetch);
#   3. `alexandria status` and `alexandria audit` inside the container; the process runs as uid 10001;
#   4. a fresh client on the host fetches the weights from the container alone (--peer) and checks their sha256;
#   5. `podman stop` (SIGTERM) ends the node with exit 0; a second container on the same volume keeps the node key.
# Prints `name: value unit` figures: image size, build and smoke times. Talks to 127.0.0.1 and podman's bridge on
# this machine only (and to the Debian mirror while building the root filesystem). Removes every container, image, and temporary file it made.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

SUITE=${SUITE:-bookworm}
# apt_debian_mirror: print the first URI in this machine's apt sources whose path ends in /debian (the main archive,
# not debian-security); files that do not exist are skipped. Prints nothing when there is none.
apt_debian_mirror() {
    local f
    local files=()
    [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ "${#files[@]}" -gt 0 ] || return 0
    for f in "${files[@]}"; do
        case "$f" in
        *.sources) awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f" ;;
        *) awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break } }' "$f" ;;
        esac
    done | awk '{ sub(/\/+$/, "") } /\/debian$/ && !found++ { print }'  # reads to the end: no SIGPIPE under pipefail
}
IMAGE_UID=10001
NOFILE=${NOFILE:-$(h=$(ulimit -Hn); { [ "$h" = unlimited ] || [ "$h" -gt 16384 ]; } && echo 16384 || echo "$h")}

die() { echo "container.sh: error: $*" >&2; exit 1; }
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(apt_debian_mirror)
    [ -n "$MIRROR" ] || die "no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d/*.{list,sources}; set MIRROR=URL (the archive root, ending in /debian)"
fi
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
wait_for() {  # wait_for SECONDS CMD...: poll every 0.5 s, bounded
    local n=$(($1 * 2)); shift
    for _ in $(seq 1 "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    return 1
}

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, buildah and podman with private storage)"
bin=${1:-}
if [ -z "$bin" ]; then
    for candidate in .build/release/alexandria .build/debug/alexandria; do
        [ -x "$candidate" ] && { bin=$candidate; break; }
    done
fi
[ -n "$bin" ] && [ -x "$bin" ] || die "no alexandria binary (build one, or pass its path)"
bin=$(readlink -f "$bin")

tools=(mmdebstrap buildah podman runc skopeo)
missing=()
for t in "${tools[@]}"; do command -v "$t" >/dev/null || missing+=("$t"); done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "${DEPS:-1}" = 1 ] || die "missing ${missing[*]}"
    echo "# installing what is missing: mmdebstrap buildah podman runc conmon skopeo (never upgrading)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --no-upgrade \
        mmdebstrap buildah podman runc conmon containernetworking-plugins iptables skopeo >/dev/null
fi

WORK=$(mktemp -d /tmp/alexandria-container.XXXXXX)
P=(podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs --runtime runc --cgroup-manager cgroupfs
    --events-backend file)
B=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
containers=()
host_pids=()
volume=alexandria-smoke-$$
cleanup() {
    local rc=$?
    for c in "${containers[@]}"; do "${P[@]}" rm -f -t 5 "$c" >/dev/null 2>&1 || true; done
    "${P[@]}" volume rm -f "$volume" >/dev/null 2>&1 || true
    "${P[@]}" rmi -a -f >/dev/null 2>&1 || true
    for p in "${host_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${host_pids[@]}"; do
        for _ in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$p" 2>/dev/null || true
    done
    local m
    for m in $(findmnt -rn -o TARGET | grep -F "$WORK/" | sort -r || true); do umount -l "$m" || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
echo "loadavg_1m_start: $(cut -d' ' -f1 /proc/loadavg) load"
echo "# binary: $bin ($(stat -c %s "$bin") bytes)"

# ---------- build ----------
t_build=$(now)
ctx=$WORK/ctx
mkdir -p "$ctx/extra"
ldd "$bin" | grep -q 'not found' && die "unresolved libraries: $(ldd "$bin" | grep 'not found' | tr -s ' \n' ' ')"
owner() {  # the Debian package that ships a library (dpkg knows one spelling of merged-/usr paths)
    local f g
    for f in "$1" "$(readlink -f "$1")"; do
        for g in "$f" "${f/#\/usr\/lib\//\/lib\/}" "${f/#\/lib\//\/usr\/lib\/}"; do
            dpkg -S "$g" 2>/dev/null | grep -v '^diversion' | head -1 | cut -d: -f1 | grep . && return 0
        done
    done
    return 0
}
packages=libc6
copied=0
while read -r lib; do
    case "$(readlink -f "$lib")" in
        /lib/* | /usr/lib/* | /lib64/*)
            pkg=$(owner "$lib")
            [ -n "$pkg" ] || die "no Debian package owns $lib"
            packages="$packages,$pkg"
            ;;
        *)  # not a system library (the Swift runtime of a dynamically linked build): same path in the image
            mkdir -p "$ctx/extra$(dirname "$lib")"
            cp -L "$lib" "$ctx/extra$lib"
            copied=$((copied + 1))
            ;;
    esac
done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
packages=$(tr ',' '\n' <<<"$packages" | sed '/^$/d' | sort -u | paste -sd,)
echo "# Debian packages in the image: $packages"
echo "copied_libraries: $copied files"
# The Containerfile installs exactly these runtime libraries; a binary that needs another one must be added there.
for pkg in $(tr ',' ' ' <<<"$packages"); do
    case "$pkg" in
        libc6 | libgcc-s1 | libstdc++6) ;;  # in debian:bookworm-slim already
        *) grep -qw "$pkg" Deploy/Containerfile || die "the binary needs $pkg, which Deploy/Containerfile does not install" ;;
    esac
done
cp "$bin" "$ctx/alexandria"
cp Deploy/entrypoint.sh "$ctx/entrypoint.sh"
mkdir -p "$ctx/Deploy" && cp Deploy/entrypoint.sh "$ctx/Deploy/entrypoint.sh"

t0=$(now)
key=$(printf '%s %s %s' "$SUITE" "$MIRROR" "$packages" | sha256sum | cut -c1-16)
cached=${ROOTFS_CACHE_DIR:+$ROOTFS_CACHE_DIR/rootfs-$SUITE-$key.tar}
if [ -n "$cached" ] && [ -f "$cached" ]; then
    cp "$cached" "$ctx/rootfs.tar"
    echo "# root filesystem from the cache $cached"
else
    hook="set -eu; R=\"\$1\"
      echo 'alexandria:x:$IMAGE_UID:$IMAGE_UID:alexandria node:/var/lib/alexandria:/usr/sbin/nologin' >> \"\$R/etc/passwd\"
      echo 'alexandria:x:$IMAGE_UID:' >> \"\$R/etc/group\"
      echo 'alexandria:!:19000::::::' >> \"\$R/etc/shadow\"
      install -d -m 0700 -o $IMAGE_UID -g $IMAGE_UID \"\$R/var/lib/alexandria\"
      rm -rf \"\$R\"/var/lib/apt/lists/* \"\$R\"/var/cache/apt/*.bin \"\$R\"/var/log/*.log \"\$R\"/var/log/apt"
    mirrors=("deb $MIRROR $SUITE main")
    [ "$SUITE" = bookworm ] && mirrors+=("deb ${MIRROR%/debian}/debian-security $SUITE-security main")
    mmdebstrap --quiet --variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --customize-hook="$hook" \
        "$SUITE" "$ctx/rootfs.tar" "${mirrors[@]}" >"$WORK/mmdebstrap.log" 2>&1 \
        || { tail -20 "$WORK/mmdebstrap.log"; die "mmdebstrap failed"; }
    if [ -n "$cached" ]; then mkdir -p "$ROOTFS_CACHE_DIR" && cp "$ctx/rootfs.tar" "$cached"; fi
fi
echo "rootfs_seconds: $(secs "$t0") s"
echo "rootfs_tar_size: $(stat -c %s "$ctx/rootfs.tar") bytes"

# The runtime stage of Deploy/Containerfile, its FROM and RUN replaced by the root filesystem above.
{
    echo "# Generated by Deploy/container.sh from the runtime stage of Deploy/Containerfile."
    echo "FROM scratch"
    echo "ADD rootfs.tar /"
    [ "$copied" -eq 0 ] || echo "COPY extra/ /"
    sed -n '/^FROM \${RUNTIME_IMAGE}$/,$p' Deploy/Containerfile | sed '1d; /^RUN /,/[^\\]$/d' \
        | sed 's|^COPY --from=build /out/alexandria |COPY alexandria |'
} >"$ctx/Containerfile"
grep -q '^COPY alexandria /usr/local/bin/alexandria$' "$ctx/Containerfile" \
    || die "Deploy/Containerfile's runtime stage no longer has the COPY this script rewrites"
grep -q '^RUN' "$ctx/Containerfile" && die "a RUN step is left in the generated Containerfile (no runtime to run it)"

t0=$(now)
"${B[@]}" bud --quiet --isolation chroot --layers --label org.opencontainers.image.title=alexandria \
    --label "org.opencontainers.image.version=$("$bin" --version 2>/dev/null | head -1 || echo unknown)" \
    -f "$ctx/Containerfile" -t localhost/alexandria:smoke "$ctx" >/dev/null
"${B[@]}" push --quiet localhost/alexandria:smoke "oci-archive:$WORK/alexandria.oci.tar:alexandria:smoke"
echo "image_build_seconds: $(secs "$t0") s"
echo "build_seconds_total: $(secs "$t_build") s"
echo "image_archive_size: $(stat -c %s "$WORK/alexandria.oci.tar") bytes (gzip layers)"
rm -rf "$ctx/rootfs.tar" "$ctx/extra"
[ -z "${KEEP_IMAGE:-}" ] || { mkdir -p "$KEEP_IMAGE" && cp "$WORK/alexandria.oci.tar" "$KEEP_IMAGE/"; }

# ---------- smoke ----------
t_smoke=$(now)
img=$("${P[@]}" pull -q "oci-archive:$WORK/alexandria.oci.tar" | tail -1)
echo "image_unpacked_size: $("${P[@]}" image inspect -f '{{.Size}}' "$img") bytes"
config=$("${P[@]}" image inspect -f '{{.Config.User}} {{.Config.Entrypoint}} {{.Config.Cmd}} {{.Config.ExposedPorts}} {{.Config.Volumes}}' "$img")
echo "# image config: $config"
for want in "10001:10001" "7420/tcp" "7421/tcp" "/var/lib/alexandria:" "node run --home /var/lib/alexandria --listen 0.0.0.0:7420"; do
    grep -qF "$want" <<<"$config" || die "image config lacks $want"
done

run=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=16384:16384")
port=$((20000 + RANDOM % 20000))
logs() { "${P[@]}" logs "$1" 2>&1; }
c1=alexandria-smoke-$$-1
containers+=("$c1")
t0=$(now)
"${P[@]}" run -d --name "$c1" "${run[@]}" -v "$volume:/var/lib/alexandria" -p "127.0.0.1:$port:7420" "$img" >/dev/null
wait_for 60 bash -c "$(printf '%q ' "${P[@]}") logs $c1 2>&1 | grep -q listening" \
    || { logs "$c1" | tail -5; die "the node did not start listening"; }
echo "container_start_seconds: $(secs "$t0") s"
uid=$("${P[@]}" exec "$c1" sh -c 'id -u; stat -c %a:%u /var/lib/alexandria' | paste -sd' ')
[ "$uid" = "10001 700:10001" ] || die "the node runs as uid/home mode:owner $uid, wanted 10001 700:10001"
echo "# inside: uid 10001, home /var/lib/alexandria mode 0700 owned by 10001"

# From outside: a node on the host publishes a small model and peers with the container through the published port.
host=$WORK/host
"$bin" init --home "$host" >/dev/null
printf '[mirror]\ninterval = "1s"\n' >"$host/config.toml"
model=$WORK/model
mkdir -p "$model"
head -c 3000000 /dev/urandom >"$model/model.safetensors"
echo '{"model_type": "smoke"}' >"$model/config.json"
"$bin" keys generate smoke --home "$host" >/dev/null
out=$("$bin" publish "$model" --name smoke --version 1.0 --license apache-2.0 --json --home "$host")
manifest=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["manifestID"])' <<<"$out")
# It dials the container through the published port; the container's mirror dials back to pull the chunks, at the
# address it saw the connection come from (podman's bridge on this machine) and the port the host node announced.
# So the host node listens on that bridge address: a real container-to-host connection, still on this machine.
gateway=$("${P[@]}" inspect -f '{{.NetworkSettings.Gateway}}' "$c1")
[[ "$gateway" =~ ^10\.|^172\.(1[6-9]|2[0-9]|3[01])\.|^192\.168\. ]] || die "no private bridge gateway ($gateway)"
hport=$((port + 1))
"$bin" node run --home "$host" --listen "$gateway:$hport" --peer "127.0.0.1:$port" --log-level warning \
    2>"$WORK/host.log" &
host_pids+=($!)
t0=$(now)
weights=$(sha256sum "$model/model.safetensors" | cut -d' ' -f1)
holds() {  # the container's node reads the weights back, verified, from its own store
    [ "$("${P[@]}" exec "$c1" alexandria cat "sha256:$weights" | sha256sum | cut -d' ' -f1)" = "$weights" ]
}
wait_for 60 holds \
    || { logs "$c1" | tail -5; tail -5 "$WORK/host.log"; die "the container did not replicate the release"; }
echo "replication_seconds: $(secs "$t0") s"
"${P[@]}" exec "$c1" alexandria status >"$WORK/status"
sed 's/^/# status inside: /' "$WORK/status"
grep -q ', running' "$WORK/status" || die "status inside does not say running"
"${P[@]}" exec "$c1" alexandria peers | sed 's/^/# peers inside: /'

# Stop the host node, so the client below can only have its bytes from the container.
kill -TERM "${host_pids[0]}"; wait "${host_pids[0]}" 2>/dev/null || true; host_pids=()
client=$WORK/client
"$bin" init --home "$client" >/dev/null
t0=$(now)
"$bin" fetch "sha256:$weights" -o "$WORK/fetched" --peer "127.0.0.1:$port" --home "$client" >/dev/null \
    || { logs "$c1" | tail -8; "${P[@]}" exec "$c1" sh -c "ls -la /var/lib/alexandria; alexandria ls"; die "fetch from the container failed"; }
[ "$(sha256sum "$WORK/fetched" | cut -d' ' -f1)" = "$weights" ] || die "fetched bytes differ"
echo "fetch_from_container_seconds: $(secs "$t0") s"
echo "# a fresh client on the host fetched sha256:${weights:0:16}… from the container only; sha256sum agrees"
"${P[@]}" inspect -f '{{.State.Running}}' "$c1" | grep -q true || { logs "$c1" | tail -5; die "the node died"; }

node_id() { grep -o 'ed25519:[0-9a-f]*' | head -1; }
before=$("${P[@]}" exec "$c1" alexandria init | node_id)
t0=$(now)
"${P[@]}" stop -t 30 "$c1" >/dev/null
code=$("${P[@]}" inspect -f '{{.State.ExitCode}}' "$c1")
echo "stop_seconds: $(secs "$t0") s"
[ "$code" = 0 ] || { logs "$c1" | tail -3; die "exit code after SIGTERM: $code"; }
logs "$c1" | grep -q stopped || die "no graceful stop in the log"
after=$("${P[@]}" run --rm "${run[@]}" -v "$volume:/var/lib/alexandria" "$img" init | node_id)
[ -n "$before" ] && [ "$before" = "$after" ] \
    || die "the home on the volume did not survive the container (node $before, then $after)"
echo "# stopped with exit 0; the volume keeps the home (node ${after:0:24}…)"
echo "smoke_seconds: $(secs "$t_smoke") s"
echo "# container smoke ok"
