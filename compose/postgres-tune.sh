#!/bin/bash
# Prints the PostgreSQL settings evpipe runs with, sized from the memory and
# cores this machine or container has (the way pgtune sizes them), for an
# append-only events table loaded in batches. Used by the compose image's
# entrypoint and by scripts/run's cluster; docs/postgresql.md explains each
# line and its measured effect.
#   postgres-tune.sh [MEMORY_MB [CORES]]   (default: what the cgroup allows)
# EVPIPE_PG_MEMORY_MB / EVPIPE_PG_CORES override what is detected.
set -euo pipefail

# Memory in MB: the cgroup's limit when there is one, else the machine's.
detect_memory_mb() {
  local total limit
  total=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  for f in /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes; do
    if [ -r "$f" ]; then
      limit=$(cat "$f")
      if [[ "$limit" =~ ^[0-9]+$ ]] && [ $((limit / 1048576)) -lt "$total" ]; then
        total=$((limit / 1048576))
      fi
      break
    fi
  done
  echo "$total"
}

# Cores: the CPUs we may run on, and fewer when a cgroup quota says so.
detect_cores() {
  local cores quota period
  cores=$(nproc)
  if [ -r /sys/fs/cgroup/cpu.max ]; then
    read -r quota period </sys/fs/cgroup/cpu.max
    if [[ "$quota" =~ ^[0-9]+$ ]] && [ "$period" -gt 0 ]; then
      quota=$(((quota + period - 1) / period))
      [ "$quota" -lt "$cores" ] && cores=$quota
    fi
  fi
  [ "$cores" -lt 1 ] && cores=1
  echo "$cores"
}

mem=${1:-${EVPIPE_PG_MEMORY_MB:-$(detect_memory_mb)}}
cores=${2:-${EVPIPE_PG_CORES:-$(detect_cores)}}
clamp() { local v=$1; [ "$v" -lt "$2" ] && v=$2; [ "$v" -gt "$3" ] && v=$3; echo "$v"; }

shared=$(clamp $((mem / 4)) 128 16384)               # a quarter of memory
cache=$(clamp $((mem * 3 / 4)) 256 1048576)          # what the OS can cache besides
maint=$(clamp $((mem / 16)) 64 2048)                 # index builds, vacuum
max_wal=$(clamp $((mem / 2)) 2048 16384)             # checkpoints by time, not by WAL volume
min_wal=$((max_wal / 4))
conns=200
work=$(clamp $(((mem - shared) * 1024 / (conns * 3) / (cores > 1 ? cores / 2 : 1))) 4096 65536)
workers=$(clamp "$cores" 2 64)
procs=$(clamp "$cores" 8 64)
gather=$(clamp $((cores / 2)) 1 8)

cat <<CONF
# evpipe: sized for ${mem}MB of memory and $cores cores (postgres-tune.sh)
shared_buffers = ${shared}MB
effective_cache_size = ${cache}MB
maintenance_work_mem = ${maint}MB
work_mem = ${work}kB
wal_buffers = 16MB
min_wal_size = ${min_wal}MB
max_wal_size = ${max_wal}MB
checkpoint_timeout = 15min
checkpoint_completion_target = 0.9
wal_compression = lz4
random_page_cost = 1.1
effective_io_concurrency = 200
max_worker_processes = $procs
max_parallel_workers = $workers
max_parallel_workers_per_gather = $gather
max_parallel_maintenance_workers = $gather
autovacuum_vacuum_insert_scale_factor = 0.02
autovacuum_vacuum_insert_threshold = 100000
autovacuum_vacuum_cost_limit = 2000
vacuum_freeze_min_age = 0
CONF
