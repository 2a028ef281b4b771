# shellcheck shell=bash
# Shared by the localnet scripts: paths, binaries, pid files and ports.
# Not meant to be run on its own.
# shellcheck disable=SC2034  # the variables are used by the scripts that source this

LOCALNET_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$LOCALNET_DIR/.." && pwd)"
# Everything the network writes: node homes, keyring, logs, pid files.
DATA="${LOCALNET_DATA:-$LOCALNET_DIR/.data}"
LOGS="$DATA/logs"
PIDS="$DATA/pids"
COMETBFT="${COMETBFT:-cometbft}"
COMETBFT_INSTALL="go install github.com/cometbft/cometbft/cmd/cometbft@v0.38.x"

log() { printf 'localnet: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# The veritraind binary: $VERITRAIND if set, else the release build.
veritraind_bin() {
  if [[ -n "${VERITRAIND:-}" ]]; then
    printf '%s\n' "$VERITRAIND"
  else
    printf '%s\n' "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/veritraind"
  fi
}

# A daemon built in this workspace, or found on PATH; empty if neither.
daemon_bin() {
  local name="$1" built
  built="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/$name"
  if [[ -x "$built" ]]; then
    printf '%s\n' "$built"
  elif command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
  fi
}

# The node homes in numeric order (node0 node1 … node10).
node_homes() {
  local i=0
  while [[ -d "$DATA/node$i" ]]; do
    printf '%s\n' "$DATA/node$i"
    i=$((i + 1))
  done
}

# The value of KEY = "VALUE" in a TOML file (first match).
toml_string() {
  local file="$1" key="$2"
  sed -n "s/^${key} = \"\\(.*\\)\"\$/\\1/p" "$file" | head -n 1
}

# Port of a host:port or scheme://host:port string.
port_of() { printf '%s\n' "${1##*:}"; }

grpc_port() { port_of "$(toml_string "$1/config/app.toml" grpc_address)"; }
abci_port() { port_of "$(toml_string "$1/config/app.toml" abci_address)"; }
rpc_port() { port_of "$(toml_string "$1/config/app.toml" comet_rpc)"; }
p2p_port() {
  sed -n '/^\[p2p\]/,/^\[/s/^laddr = "tcp:\/\/.*:\([0-9]*\)"$/\1/p' "$1/config/config.toml" | head -n 1
}

# Whether the process in pid file $1 is alive.
pid_alive() {
  local f="$1" pid
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# Whether something listens on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits until something listens on 127.0.0.1:$1, at most $2 seconds, while
# the process in pid file $3 is alive.
wait_port() {
  local port="$1" secs="$2" pidfile="$3" i
  for ((i = 0; i < secs * 10; i++)); do
    pid_alive "$pidfile" || return 1
    if port_open "$port"; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}
