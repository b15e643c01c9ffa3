# Shell helpers for scripts/run, scripts/test, scripts/bench: installing what
# is missing, building, and a private PostgreSQL cluster. Sourced, not run.

EVPIPE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

evp_say() { printf '%s\n' "evpipe: $*" >&2; }
evp_die() { evp_say "$*"; exit 1; }

# evp_need_packages PKG... : apt-get installs the Debian packages not yet installed.
evp_need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  evp_say "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q </dev/null || evp_die "apt-get update failed"
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null ||
    evp_die "apt-get install ${missing[*]} failed"
}

# What building and running evpipe needs.
EVP_BUILD_PACKAGES=(build-essential cmake pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libpq-dev
  libsodium-dev libcriterion-dev libmicrohttpd-dev postgresql-15 postgresql-client-15)

# evp_build BUILD_DIR [cmake args...]
evp_build() {
  local dir=$1; shift
  cmake -S "$EVPIPE_ROOT" -B "$dir" "$@" >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log" >&2; evp_die "cmake configure failed"; }
  cmake --build "$dir" -j"$(nproc)" >"$dir.build.log" 2>&1 ||
    { tail -n 60 "$dir.build.log" >&2; evp_die "build failed (full log: $dir.build.log)"; }
}

# Runs a command as the cluster's owner: postgres when we are root (PostgreSQL
# refuses to run as root), ourselves otherwise.
evp_pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# evp_pg_tune DATA_DIR: sizes the cluster's memory, WAL, checkpoint and
# autovacuum settings from this machine (compose/postgres-tune.sh, the same
# as the compose image; docs/postgresql.md) into DATA_DIR/evpipe-tune.conf,
# written again at each start, so it follows the machine. ALTER SYSTEM still
# wins (postgresql.auto.conf is read after it).
evp_pg_tune() {
  local data=$1
  "$EVPIPE_ROOT/compose/postgres-tune.sh" >"$data/evpipe-tune.conf.new" || evp_die "postgres-tune.sh failed"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data/evpipe-tune.conf.new"
  mv "$data/evpipe-tune.conf.new" "$data/evpipe-tune.conf"
  grep -q "^include_if_exists = 'evpipe-tune.conf'" "$data/postgresql.conf" ||
    echo "include_if_exists = 'evpipe-tune.conf'" >>"$data/postgresql.conf"
}

# evp_pg_start DATA_DIR PORT AUTH SUPERUSER [PASSWORD]
# Creates the cluster on first use; listens on 127.0.0.1:PORT and a socket in
# DATA_DIR. AUTH is trust (tests) or scram-sha-256 (the local run). With
# EVP_PG_TUNE=1 the cluster is set up for the job (evp_pg_tune); otherwise it
# keeps PostgreSQL's defaults (the tests' throw-away cluster stays small).
evp_pg_start() {
  local data=$1 port=$2 auth=$3 user=$4 password=${5:-}
  if [ ! -f "$data/PG_VERSION" ]; then
    mkdir -p "$data"
    if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$(dirname "$data")"; then
      evp_die "PostgreSQL runs as the postgres user, which cannot reach $(dirname "$data"):" \
        "give it access to the folders above (chmod o+x) or move the project"
    fi
    [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
    chmod 700 "$data"
    local pwfile
    pwfile=$(mktemp)
    printf '%s\n' "${password:-unused}" >"$pwfile"
    chmod 644 "$pwfile"
    evp_pg_as_owner "$PG_BIN/initdb" -D "$data" -U "$user" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
      --auth-local=trust --auth-host="$auth" >"$data.initdb.log" 2>&1 ||
      { rm -f "$pwfile"; cat "$data.initdb.log" >&2; evp_die "initdb failed"; }
    rm -f "$pwfile"
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 200
fsync = on
synchronous_commit = on
CONF
  fi
  [ "${EVP_PG_TUNE:-0}" = 1 ] && evp_pg_tune "$data"
  evp_pg_as_owner "$PG_BIN/pg_ctl" -D "$data" -o "-p $port" -l "$data/server.log" -w -t 60 start >/dev/null ||
    { tail -n 30 "$data/server.log" >&2; evp_die "PostgreSQL did not start on port $port"; }
}

# evp_pg_stop DATA_DIR
evp_pg_stop() {
  [ -f "$1/postmaster.pid" ] || return 0
  evp_pg_as_owner "$PG_BIN/pg_ctl" -D "$1" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

# evp_free_port: a TCP port nobody listens on, below the range the kernel
# gives outgoing connections (a port from there can be taken by one before
# the service that was to bind it does).
evp_free_port() {
  python3 - 2>/dev/null <<'PY' || shuf -i 10000-32767 -n 1
import random, socket
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for _ in range(1000):
    port = random.randrange(10000, max(low, 10001))
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
else:
    raise SystemExit(1)
PY
}

# evp_load_env FILE: exports each KEY=value of a .env file, unless the
# environment already sets KEY (the environment wins, as in docker compose).
evp_load_env() {
  local line key value
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    key=${line%%=*}
    value=${line#*=}
    [[ "$key" =~ ^[A-Z_][A-Z0-9_]*$ ]] || continue
    [ -n "${!key+x}" ] || export "$key=$value"
  done <"$1"
}

# evp_wait_for_log FILE TEXT SECONDS: waits until FILE holds TEXT.
evp_wait_for_log() {
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -qF "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
