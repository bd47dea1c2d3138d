#!/bin/sh
# The container's entrypoint: creates the node's home on the first start (`alexandria init` leaves an existing home
# as it was), then hands the process over to alexandria, so SIGTERM from `docker stop` reaches the node itself.
# Any arguments are an alexandria command line: `docker run IMAGE status`, `docker exec CONTAINER alexandria peers`.
set -eu
: "${ALEXANDRIA_HOME:=/var/lib/alexandria}"
export ALEXANDRIA_HOME
if [ "${1:-}" = node ]; then
    alexandria init --home "$ALEXANDRIA_HOME" >/dev/null
fi
exec alexandria "$@"
