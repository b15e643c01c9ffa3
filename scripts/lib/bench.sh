# Helpers of scripts/bench: a private PostgreSQL, fresh databases, the
# services with their own ports and folders, timing, memory and the writer's
# latency histogram. Sourced after common.sh, not run.
#
# State the helpers share (set by scripts/bench):
#   B_WORK  temp folder of this run       B_PGDATA  its cluster
#   B_PORT  the cluster's port            B_BIN     build/bin of the Release build
#   B_PIDS  services running now (pid)    B_NAMES   their names, in step

B_PIDS=()
B_NAMES=()
B_USED_PORTS=" "

# b_now: seconds since the epoch with nanoseconds (for durations).
b_now() { date +%s.%N; }

# b_calc EXPR: floating-point arithmetic in awk (no bc on a fresh Debian).
b_calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }

# b_int N: N rounded to an integer, with thousands separators (1,234,567).
b_int() {
  awk -v n="$1" 'BEGIN {
    s = sprintf("%.0f", n); neg = (substr(s, 1, 1) == "-"); if (neg) s = substr(s, 2)
    out = ""; while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
    printf "%s%s%s", (neg ? "-" : ""), s, out }'
}

# b_port VAR: sets VAR to a free port (evp_free_port) never handed out twice
# in one run (no command substitution of b_port itself: the list of ports
# handed out is kept in this shell).
b_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$(evp_free_port)
    case "$B_USED_PORTS" in *" $p "*) continue ;; esac
    B_USED_PORTS+="$p "
    printf -v "$1" %s "$p"
    return 0
  done
  evp_die "no free port found"
}

# b_psql DB SQL: one value or rows, unaligned, no headers.
b_psql() {
  psql -h 127.0.0.1 -p "$B_PORT" -U postgres -d "$1" -tAqX -v ON_ERROR_STOP=1 -c "$2"
}

# b_new_db NAME: a fresh database with the evpipe schema (the writer's
# embedded migrations), so every method loads into the same indexed table;
# then a CHECKPOINT, so every load starts from the same state: no checkpoint
# of an earlier load's WAL (and none of the full-page writes that follow
# one) falls into the next load's time.
b_new_db() {
  PGOPTIONS="-c client_min_messages=warning" dropdb -h 127.0.0.1 -p "$B_PORT" -U postgres --if-exists "$1"
  createdb -h 127.0.0.1 -p "$B_PORT" -U postgres "$1"
  b_env "$1" "$B_WORK/migrate"
  LOG_LEVEL=warn "$B_BIN/evpipe-writer" --migrate-only >"$B_WORK/migrate.log" 2>&1 ||
    { cat "$B_WORK/migrate.log" >&2; evp_die "migrations failed on $1"; }
  b_psql "$1" "CHECKPOINT" >/dev/null
}

# b_drop_db NAME
b_drop_db() { PGOPTIONS="-c client_min_messages=warning" dropdb -h 127.0.0.1 -p "$B_PORT" -U postgres --if-exists "$1" || true; }

# b_env DB RUNDIR: exports the settings every service of one run reads: the
# database, fresh endpoints, an archive and a state folder of its own.
b_env() {
  local db=$1 run=$2
  mkdir -p "$run/archive" "$run/state"
  export POSTGRES_HOST=127.0.0.1 POSTGRES_PORT=$B_PORT POSTGRES_USER=postgres POSTGRES_PASSWORD=unused
  export POSTGRES_DB=$db
  export ARCHIVE_DIR=$run/archive STATE_DIR=$run/state
  local p1 p2 p3 p4
  b_port p1; b_port p2; b_port p3; b_port p4
  export BUS_PUBLISH_ENDPOINT=tcp://127.0.0.1:$p1 BUS_SUBSCRIBE_ENDPOINT=tcp://127.0.0.1:$p2
  export BUS_TAP_ENDPOINT=tcp://127.0.0.1:$p3 REPLAY_ENDPOINT=tcp://127.0.0.1:$p4
  export LOG_LEVEL=${BENCH_LOG_LEVEL:-info} METRICS_PORT=0 CURVE=0 PARTITIONS=16
}

# b_start NAME LOG [VAR=value...] -- CMD...: a service in the background.
b_start() {
  local name=$1 log=$2; shift 2
  local vars=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  env "${vars[@]}" "$@" >"$log" 2>&1 &
  B_PIDS+=($!)
  B_NAMES+=("$name")
}

# b_pid NAME: the pid of a running service started with b_start.
b_pid() {
  local i
  for i in "${!B_NAMES[@]}"; do
    [ "${B_NAMES[$i]}" = "$1" ] && { echo "${B_PIDS[$i]}"; return 0; }
  done
  return 1
}

# b_kb PID FIELD: VmHWM (peak) or VmRSS (now) of a process, in kB; 0 when gone.
b_kb() {
  awk -v f="$2:" '$1 == f { print $2; found = 1 } END { if (!found) print 0 }' "/proc/$1/status" 2>/dev/null ||
    echo 0
}

# b_cpu PID: CPU seconds (user + system) the process has used so far.
b_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null ||
    echo 0
}

# b_backend_cpu DB APP: CPU seconds of the PostgreSQL backends whose
# application_name starts with APP.
b_backend_cpu() {
  local pid total=0
  for pid in $(b_psql "$1" "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name LIKE '$2%'"); do
    total=$(b_calc "$total + $(b_cpu "$pid")")
  done
  printf '%.2f' "$total"
}

# b_stop NAME [SECONDS]: SIGTERM, then waits (KILL after the deadline).
b_stop() {
  local name=$1 limit=${2:-60} i pid=""
  for i in "${!B_NAMES[@]}"; do [ "${B_NAMES[$i]}" = "$name" ] && pid=${B_PIDS[$i]} && break; done
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  local t
  for ((t = 0; t < limit * 10; t++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    evp_say "$name did not stop within ${limit} s: killed"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  unset "B_PIDS[$i]" "B_NAMES[$i]"
  B_PIDS=("${B_PIDS[@]}")
  B_NAMES=("${B_NAMES[@]}")
}

# b_stop_all: every service still running, the last started first.
b_stop_all() {
  local i
  for ((i = ${#B_NAMES[@]} - 1; i >= 0; i--)); do
    b_stop "${B_NAMES[$i]}" 30
  done
}

# b_committed DB: events committed so far, from the checkpoints (seqs start at 1
# with no holes, so their sum is the row count; cheap while rows pour in).
b_committed() { b_psql "$1" "SELECT COALESCE(sum(seq), 0) FROM checkpoints"; }

# b_archived DIR: rows in the archive's CSV files (each has a header line).
b_archived() {
  local f n=0 c
  for f in "$1"/*.csv; do
    [ -e "$f" ] || continue
    c=$(wc -l <"$f")
    n=$((n + c - 1))
  done
  echo "$n"
}

# b_metrics PORT: the Prometheus text of a service (METRICS_PORT).
b_metrics() { curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics"; }

# b_latency BEFORE AFTER [HISTOGRAM]: p50, p99, p99.9 (ms) and the shares at
# or below 25 ms and 100 ms of a histogram (default
# evpipe_writer_publish_to_commit_seconds) between two scrapes. Quantiles are interpolated inside buckets like Prometheus's
# histogram_quantile; the shares are exact (25 ms and 100 ms are bucket bounds).
b_latency() {
  awk -v m="^${3:-evpipe_writer_publish_to_commit_seconds}_bucket" '
    FNR == 1 { file++ }
    $0 ~ m {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      if (file == 1) before[le] = $NF; else { after[le] = $NF; if (!(le in seen)) { seen[le] = 1; order[++n] = le } }
    }
    END {
      for (i = 1; i <= n; i++) { le = order[i]; cum[i] = after[le] - before[le]; bound[i] = (le == "+Inf") ? -1 : le + 0 }
      total = cum[n]
      if (total <= 0) { print "0 0 0 0 0 0"; exit }
      split("0.5 0.99 0.999", qs, " ")
      for (k = 1; k <= 3; k++) {
        rank = qs[k] * total; prev = 0; lo = 0
        for (i = 1; i <= n; i++) {
          if (cum[i] >= rank) {
            if (bound[i] < 0) { v = lo } else { v = lo + (bound[i] - lo) * (rank - prev) / (cum[i] - prev) }
            break
          }
          prev = cum[i]; lo = bound[i]
        }
        q[k] = v * 1000
      }
      for (i = 1; i <= n; i++) { if (bound[i] == 0.025) s25 = cum[i] / total; if (bound[i] == 0.1) s100 = cum[i] / total }
      printf "%.1f %.1f %.1f %.5f %.5f %d\n", q[1], q[2], q[3], s25, s100, total
    }' "$1" "$2"
}

# b_wait_committed DB TARGET SECONDS [STALL]: waits until TARGET events are
# committed; gives up (1) after SECONDS, or after STALL seconds without progress.
b_wait_committed() {
  local i c last=-1 still=0 stall=${4:-$3}
  for ((i = 0; i < $3 * 4; i++)); do
    c=$(b_committed "$1")
    [ "$c" -ge "$2" ] && return 0
    if [ "$c" -eq "$last" ]; then still=$((still + 1)); else still=0; last=$c; fi
    [ "$still" -ge $((stall * 4)) ] && return 1
    sleep 0.25
  done
  return 1
}
