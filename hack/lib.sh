# Shared shell helpers for hack/ scripts. Source, don't run.
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=versions.env
. "$HACK_DIR/versions.env"

# Binaries live outside the work tree so a fresh clone on the same machine reuses them.
RPO_CACHE=${RPO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/redis-pool-operator}
TOOLS_BIN="$RPO_CACHE/bin/k8s-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
