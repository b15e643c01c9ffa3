#!/bin/bash
# Entrypoint of the evpipe PostgreSQL image. On first start (no cluster in
# PGDATA) it creates one: superuser POSTGRES_USER with POSTGRES_PASSWORD,
# the database POSTGRES_DB, scram-sha-256 for every TCP client, trust on the
# container's own Unix socket. Then it runs PostgreSQL in the foreground,
# listening on every address of the container on port 5432, with settings
# sized from the container's memory and cores (postgres-tune.sh). Runs as postgres.
# The cluster is made in PGDATA.init and renamed when complete, so a first
# start that was interrupted is simply done again.
set -euo pipefail

: "${PGDATA:?PGDATA must be set}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
say() { printf 'postgres-entrypoint: %s\n' "$*" >&2; }

if [ "$(id -u)" -eq 0 ]; then
  say "refusing to run as root: run the image as the postgres user"
  exit 1
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    say "POSTGRES_PASSWORD is empty: set it (in .env) before the first start"
    exit 1
  fi
  init="$PGDATA.init"
  rm -rf "$init"
  say "creating the cluster (user $POSTGRES_USER, database $POSTGRES_DB)"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb -D "$init" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  cat >>"$init/postgresql.conf" <<'CONF'
# evpipe (postgres-entrypoint.sh)
listen_addresses = '*'
port = 5432
password_encryption = scram-sha-256
CONF
  echo 'host all all all scram-sha-256' >>"$init/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # On the Unix socket only, so nobody connects before the database exists.
    pg_ctl -D "$init" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
    createdb -U "$POSTGRES_USER" -- "$POSTGRES_DB"
    pg_ctl -D "$init" -m fast -w -t 60 stop >/dev/null
  fi
  mv "$init" "$PGDATA"
  say "cluster ready"
fi

# Memory, WAL, checkpoints and autovacuum sized from what this container may
# use, at every start (docs/postgresql.md); ALTER SYSTEM still wins.
postgres-tune.sh >"$PGDATA/evpipe-tune.conf"
grep -q "^include_if_exists = 'evpipe-tune.conf'" "$PGDATA/postgresql.conf" ||
  echo "include_if_exists = 'evpipe-tune.conf'" >>"$PGDATA/postgresql.conf"

exec postgres -D "$PGDATA" "$@"
