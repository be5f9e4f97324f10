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
# curl, prometheus, alertmanager) when they are missing: with apt-get as root or through sudo, else says what
# to install.
ensure_system_packages() {
  local need=()
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v redis-cli >/dev/null || need+=(redis-tools)
  command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
  command -v nutcracker >/dev/null || [[ -x /usr/sbin/nutcracker ]] || need+=(nutcracker)
  command -v openssl >/dev/null || need+=(openssl)
  command -v curl >/dev/null || need+=(curl)
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
  install_packages "${need[@]}"
}

# Installs Debian packages with apt-get (as root or through sudo), else says what to install.
install_packages() {
  local need=("$@") sudo=""
  ((${#need[@]})) || return 0
  [[ $(id -u) == 0 ]] || sudo=$(command -v sudo || true)
  if command -v apt-get >/dev/null && { [[ $(id -u) == 0 ]] || [[ -n $sudo ]]; }; then
    log "installing: ${need[*]}"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # No recommends: prometheus would bring its node exporter and more.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    die "missing: ${need[*]}; install them with your package manager"
  fi
}

# Everything the README's two commands need, checked before any long build: the toolchains a
# person must install (a clear line for each), then the system packages this script can install.
preflight() {
  local missing=() c
  for c in cargo go python3 kubectl; do command -v "$c" >/dev/null || missing+=("$c"); done
  ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (install Rust from https://rustup.rs, Go >= 1.26 from https://go.dev/dl, python3 and kubectl from your package manager)"
  # Kubernetes v1.37 needs Go 1.26: say so now, not after minutes of building.
  local gover
  gover=$(go env GOVERSION 2>/dev/null || echo unknown)
  [[ $gover =~ ^go1\.([0-9]+) ]] && ((BASH_REMATCH[1] >= 26)) || die "Go >= 1.26 is needed, this is $gover (https://go.dev/dl)"
  ensure_system_packages
}

# Builds the Rust workspace (`cargo ARGS...`, output to a log) while hack/build-tools builds
# the Go tools named in $GO_TOOLS: on a first run neither waits for the other, and module
# downloads of one overlap the compiling of the other.
build_rust_and_tools() {
  local log="$RPO_CACHE/logs/cargo-build.log" pid t0=$SECONDS
  mkdir -p "$RPO_CACHE/logs"
  local first=""
  # Measured cold on 2 cores, beside the Go tools: about 20 minutes; later runs take seconds.
  [[ -x "${CARGO_TARGET_DIR:-$ROOT_DIR/target}/debug/redis-pool-operator" ]] || first="first build, about 20 minutes on 2 cores; "
  log "compiling the Rust workspace in the background (${first}cargo $*; output in $log)"
  cargo "$@" >"$log" 2>&1 &
  pid=$!
  "$HACK_DIR/build-tools" ${GO_TOOLS:-all} || { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; exit 1; }
  wait_for_build "$pid" "compiling the Rust workspace" "$log" "cargo $1 failed; the full output is in $log" "$t0"
  log "Rust workspace compiled ($((SECONDS - t0))s)"
}

# Waits for the build PID, saying "still WHAT: Ns" (since T0, default now) every minute so a long
# build never looks hung; if it fails, prints the tail of LOG and dies with MESSAGE.
wait_for_build() { # pid what log message [t0]
  local pid=$1 what=$2 log=$3 message=$4 t0=${5:-$SECONDS} beat=$((SECONDS + 60)) rc=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= beat)); then
      log "    still $what: $((SECONDS - t0))s"
      beat=$((SECONDS + 60))
    fi
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    tail -n 30 "$log" >&2
    die "$message"
  fi
}
