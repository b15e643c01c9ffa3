# scripts/bench --growth: what a growing events table does to speed. Up to
# GROWTH_ROWS rows (default 50,000,000) in steps of GROWTH_STEP (1,000,000),
# each step timed, for three loads:
#   live      events of the current time: the generator at full speed through
#             bus and writers; for \copy, files stamped from now on
#   inorder   a replay in order: files whose event_time runs on file by file
#   backfill  a month of events in shuffled order, file after file
# each for `psql \copy` into PostgreSQL with its default settings and for
# evpipe as it ships (the cluster set up by compose/postgres-tune.sh, the
# services with their defaults; GROWTH_PARTITION=1 day adds time partitions).
# Records rows/s per step against the rows already there, disk and WAL per
# million rows; prints a table and writes it with a plot (docs/img/growth.png)
# into docs/performance.md. Sourced by scripts/bench after its helpers, not run.
#
# Settings: GROWTH_ROWS, GROWTH_STEP, GROWTH_LOADS ("live inorder backfill"),
# GROWTH_SYSTEMS ("copy evpipe"; copy_tuned: \copy into the cluster evpipe
# ships, which tells the settings' share from evpipe's), GROWTH_PG_MEMORY_MB (memory the tuned
# cluster is sized for; default: the machine's), GROWTH_PARTITION.

G_ROWS=${GROWTH_ROWS:-50000000}
G_STEP=${GROWTH_STEP:-1000000}
G_LOADS=${GROWTH_LOADS:-live inorder backfill}
G_SYSTEMS=${GROWTH_SYSTEMS:-copy evpipe}
G_STEPS=$((G_ROWS / G_STEP))
# The in-order and backfill events start on 2024-01-01 (UTC); a backfill
# spreads each file over 30 days; bench-oldcsv puts rows about 1.3 s apart.
G_BASE=1704067200
G_MONTH=2592000

# growth_cluster default|tuned: restarts the cluster with PostgreSQL's
# defaults or with what evpipe ships (compose/postgres-tune.sh).
growth_cluster() {
  evp_pg_stop "$B_PGDATA"
  if [ "$1" = tuned ]; then
    EVPIPE_PG_MEMORY_MB=${GROWTH_PG_MEMORY_MB:-} EVP_PG_TUNE=1 evp_pg_start "$B_PGDATA" "$B_PORT" trust postgres
  else
    [ -f "$B_PGDATA/evpipe-tune.conf" ] && : >"$B_PGDATA/evpipe-tune.conf"
    evp_pg_start "$B_PGDATA" "$B_PORT" trust postgres
  fi
  res "growth.$1.shared_buffers" "$(b_psql postgres "SHOW shared_buffers")"
  res "growth.$1.max_wal_size" "$(b_psql postgres "SHOW max_wal_size")"
}

# growth_file LOAD STEP FILE: the STEP-th file of a load (G_STEP rows).
growth_file() {
  local start span=""
  case $1 in
    live) start=$(date +%s) ;;
    inorder) start=$((G_BASE + ($2 - 1) * G_STEP * 13 / 10)) ;;
    backfill) start=$G_BASE span=$G_MONTH ;;
  esac
  "$B_WORK/bench-oldcsv" "$G_STEP" "$((1000 + $2))" "$start" $span >"$3"
  chmod 644 "$3"
}

# growth_size DB: bytes of events with its indexes, all partitions included
# (pg_partition_tree lists nothing for a plain table).
growth_size() {
  b_psql "$1" "SELECT COALESCE((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('events')
    WHERE isleaf), pg_total_relation_size('events'))"
}
growth_lsn() { b_psql "$1" "SELECT pg_current_wal_lsn()"; }
growth_wal() { b_psql "$1" "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$2')::bigint"; }

# growth_record KEY STEP SECONDS DB LSN0: one step's figures.
growth_record() {
  res "$1.$2.s" "$3"
  res "$1.$2.bytes" "$(growth_size "$4")"
  res "$1.$2.wal" "$(growth_wal "$4" "$5")"
  evp_say "($1) step $2/$G_STEPS: $(b_calc "$G_STEP / $3" | cut -d. -f1) rows/s"
}

# growth_copy LOAD SYSTEM: \copy, step by step.
growth_copy() {
  local load=$1 key=$1_$2 db=growth step f t0 t1 lsn
  b_new_db "$db"
  res "$key.checkpoints_req0" "$(b_psql "$db" "SELECT checkpoints_req FROM pg_stat_bgwriter")"
  for ((step = 1; step <= G_STEPS; step++)); do
    f=$B_WORK/growth/$load-$step.csv
    growth_file "$load" "$step" "$f"
    lsn=$(growth_lsn "$db")
    t0=$(b_now)
    psql -h 127.0.0.1 -p "$B_PORT" -U postgres -d "$db" -qX -v ON_ERROR_STOP=1 \
      -c "\\copy events ($COLS) FROM '$f' WITH (FORMAT csv, HEADER true)"
    t1=$(b_now)
    rm -f "$f"
    growth_record "$key" "$step" "$(b_calc "$t1 - $t0")" "$db" "$lsn"
  done
  res "$key.checkpoints_req" "$(b_psql "$db" "SELECT checkpoints_req FROM pg_stat_bgwriter")"
  res "$key.rows" "$(b_psql "$db" "SELECT count(*) FROM events")"
  b_drop_db "$db"
}

# growth_evpipe LOAD: through the pipeline as shipped.
growth_evpipe() {
  local load=$1 key=$1_evpipe db=growth run=$B_WORK/growth-$1 step f t0 t1 lsn c
  [ -n "${GROWTH_PARTITION:-}" ] && export EVENTS_PARTITION_INTERVAL=$GROWTH_PARTITION
  b_new_db "$db"
  B_REPAIR=1 pipeline_up "$db" "$run" 1
  if [ "$load" = live ]; then
    b_start generator "$run/generator.log" GENERATOR_RATE=max GENERATOR_SEED=4242 -- "$B_BIN/evpipe-generator"
    t0=$(b_now)
    lsn=$(growth_lsn "$db")
    for ((step = 1; step <= G_STEPS; step++)); do
      while c=$(b_committed "$db") && [ "$c" -lt $((step * G_STEP)) ]; do
        sleep 0.2
        kill -0 "$(b_pid generator)" 2>/dev/null || evp_die "the generator stopped: see $run/generator.log"
      done
      t1=$(b_now)
      growth_record "$key" "$step" "$(b_calc "($t1 - $t0) * $G_STEP / ($c - ($step - 1) * $G_STEP)")" "$db" "$lsn"
      t0=$t1
      lsn=$(growth_lsn "$db")
    done
    b_stop generator 60
  else
    for ((step = 1; step <= G_STEPS; step++)); do
      f=$B_WORK/growth/$load-$step.csv
      growth_file "$load" "$step" "$f"
      lsn=$(growth_lsn "$db")
      t0=$(b_now)
      "$B_BIN/evpipe-ingest" --wait --wait-timeout 3600 "$f" >"$run/ingest-$step.out" 2>"$run/ingest-$step.log" ||
        { tail -n 20 "$run/ingest-$step.log" >&2; evp_die "ingest failed at step $step"; }
      t1=$(b_now)
      rm -f "$f"
      growth_record "$key" "$step" "$(b_calc "$t1 - $t0")" "$db" "$lsn"
    done
  fi
  pipeline_down "$key" 1 "$db"
  res "$key.rows" "$(b_psql "$db" "SELECT count(*) FROM events")"
  res "$key.checkpoints_req" "$(b_psql "$db" "SELECT checkpoints_req FROM pg_stat_bgwriter")"
  b_drop_db "$db"
  unset EVENTS_PARTITION_INTERVAL
}

growth_rate() { local s; s=$(get "$1.$2.s"); [ -n "$s" ] && b_calc "$G_STEP / $s"; }

# growth_median KEY FROM TO: the median rows/s of steps FROM..TO (one step
# is noisy on a shared machine: a neighbour's burst halves it).
growth_median() {
  local s
  for ((s = $2; s <= $3; s++)); do growth_rate "$1" "$s" && echo; done | sort -g |
    awk 'NF { v[++n] = $1 } END { if (n == 0) exit; print (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

# growth_table: one line per load and system, each rate the median of five
# steps (fewer in a run of under 15): the first ones, those around the
# middle, and the last ones.
growth_table() {
  local load sys key first last mid m w mb wal rows
  w=5; [ "$G_STEPS" -lt $((3 * w)) ] && w=$(((G_STEPS + 2) / 3))
  m=$(((G_STEPS - w) / 2 + 1))
  echo "| load | into | rows/s, first $(b_int $((w * G_STEP))) rows | from $(b_int $(((m - 1) * G_STEP))) rows | last $(b_int $((w * G_STEP))) (to $(b_int "$G_ROWS")) | last ÷ first | MB per million rows | WAL MB per million rows |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for load in $G_LOADS; do
    for sys in $G_SYSTEMS; do
      key=${load}_$sys
      [ -n "$(get "$key.1.s")" ] || continue
      first=$(growth_median "$key" 1 "$w")
      mid=$(growth_median "$key" "$m" $((m + w - 1)))
      last=$(growth_median "$key" $((G_STEPS - w + 1)) "$G_STEPS")
      rows=$(get "$key.rows")
      mb=—
      [ -n "$(get "$key.$G_STEPS.bytes")" ] &&
        mb=$(b_int "$(b_calc "$(get "$key.$G_STEPS.bytes") / 1048576 / (${rows:-$G_ROWS} / 1000000)")")
      wal=0
      local s
      for ((s = 1; s <= G_STEPS; s++)); do wal=$(b_calc "$wal + $(get "$key.$s.wal")"); done
      wal=$(b_calc "$wal / 1048576 / $G_STEPS / ($G_STEP / 1000000)")
      case $sys in
        copy) sys="\`psql \\copy\`, PostgreSQL defaults" ;;
        copy_tuned) sys="\`psql \\copy\`, PostgreSQL as evpipe sets it up" ;;
        evpipe) sys="evpipe as shipped${GROWTH_PARTITION:+ (partitions of $GROWTH_PARTITION)}" ;;
      esac
      echo "| $load | $sys | $(b_int "$first") | $(b_int "$mid") | $(b_int "$last") | $(b_calc "$last / $first" | awk '{ printf "%.2f", $1 }') | $mb | $(b_int "$wal") |"
    done
  done
}

# growth_plot: rows/s of each step, and the WAL it wrote per million rows,
# against the rows already in the table.
growth_plot() {
  local load sys key s plots=() wals=() dat
  for load in $G_LOADS; do
    for sys in $G_SYSTEMS; do
      key=${load}_$sys
      [ -n "$(get "$key.1.s")" ] || continue
      dat=$B_WORK/growth-$key.dat
      for ((s = 1; s <= G_STEPS; s++)); do
        echo "$(b_calc "($s - 1) * $G_STEP / 1000000") $(growth_rate "$key" "$s")" \
          "$(b_calc "$(get "$key.$s.wal") / 1048576 / ($G_STEP / 1000000)")"
      done >"$dat"
      plots+=("\"$dat\" using 1:2 with linespoints title \"$load, $sys\"")
      wals+=("\"$dat\" using 1:3 with linespoints title \"$load, $sys\"")
    done
  done
  [ ${#plots[@]} -gt 0 ] || return 0
  mkdir -p docs/img
  local joined joined_wal
  joined=$(printf '%s, ' "${plots[@]}")
  joined_wal=$(printf '%s, ' "${wals[@]}")
  gnuplot <<GP
set terminal pngcairo size 900,800 font "sans,10" noenhanced
set output "docs/img/growth.png"
set multiplot layout 2,1
set title "Rows/s of each $(b_int "$G_STEP")-row step against the rows already in events, $(nproc) cores"
set xlabel "rows already in the table (millions)"
set ylabel "rows/s"
set yrange [0:*]
set grid
set key outside right
set format y "%.0f"
plot ${joined%, }
set title "WAL written per million rows in each step (MB)"
set ylabel "WAL MB per million rows"
plot ${joined_wal%, }
unset multiplot
GP
}

growth_main() {
  mkdir -p "$B_WORK/growth"
  local load sys
  for sys in $G_SYSTEMS; do
    # \copy: PostgreSQL as it comes; evpipe: as it ships.
    if [ "$sys" = copy ]; then growth_cluster default; else growth_cluster tuned; fi
    for load in $G_LOADS; do
      res "load.growth.$load.$sys" "$(load_now)"
      case $sys in
        copy|copy_tuned) growth_copy "$load" "$sys" ;;
        evpipe) growth_evpipe "$load" ;;
        *) evp_die "GROWTH_SYSTEMS: unknown system $sys (copy, copy_tuned, evpipe)" ;;
      esac
    done
  done
}
