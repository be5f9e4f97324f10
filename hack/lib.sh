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

# Installs the system packages the tests and the demo need (redis-server, redis-cli, openssl,
# curl) when they are missing: with apt-get as root or through sudo, else says what to install.
ensure_system_packages() {
  local need=() sudo=""
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-cli >/dev/null || need+=(redis-tools)
  command -v openssl >/dev/null || need+=(openssl)
  command -v curl >/dev/null || need+=(curl)
  ((${#need[@]})) || return 0
  [[ $(id -u) == 0 ]] || sudo=$(command -v sudo || true)
  if command -v apt-get >/dev/null && { [[ $(id -u) == 0 ]] || [[ -n $sudo ]]; }; then
    log "installing: ${need[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    die "missing: ${need[*]}; install them with your package manager"
  fi
}
