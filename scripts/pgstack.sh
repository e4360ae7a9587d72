#!/usr/bin/env bash
# scripts/pgstack.sh - a throwaway PostgreSQL for shenbao's tests and benchmarks, as
# scripts/mailstack.sh is for mail: Debian's own packages, a private cluster, loopback only,
# no systemd.
#
# What runs: PostgreSQL (Debian 12: 15) on 127.0.0.1:$PGSTACK_PORT (5433), its socket and
# data below $PGSTACK_DIR, owned by the `postgres` system user (the server refuses root).
# Role `shenbao` (password `shenbao-pw`, scram-sha-256, may create databases) owns database
# `shenbao`; each test creates a database of its own.
#
# Usage: scripts/pgstack.sh COMMAND
#   install   install the Debian package (idempotent)
#   start     (install if needed,) create the cluster on first use, start it, print `env`;
#             a running healthy cluster is left alone
#   stop      stop the server (data stays for inspection)
#   wipe      stop and delete the cluster
#   status    exit 0 only if the server answers
#   env       print shell exports: eval "$(scripts/pgstack.sh env)"
#
# Environment: PGSTACK_DIR (default /tmp/shenbao-pgstack), PGSTACK_PORT (5433).
set -euo pipefail

DIR=${PGSTACK_DIR:-/tmp/shenbao-pgstack}
PORT=${PGSTACK_PORT:-5433}
DATA=$DIR/data
SOCK=$DIR/run
LOGFILE=$DIR/postgres.log
ROLE=shenbao
PASSWORD=shenbao-pw

log() { printf '[pgstack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && printf '%s' "$d"
}

as_pg() { runuser -u postgres -- "$@"; }

cmd_install() {
  if [ -n "$(bindir)" ] && [ -x "$(bindir)/pg_ctl" ]; then return 0; fi
  [ "$(id -u)" = 0 ] || die "installing PostgreSQL needs root"
  log "installing postgresql"
  local apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 postgresql)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 \
    || { apt-get update -q -o DPkg::Lock::Timeout=300 >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; }
  [ -x "$(bindir)/pg_ctl" ] || die "postgresql installed but pg_ctl not found under /usr/lib/postgresql"
}

psql_q() { as_pg "$(bindir)/psql" -h "$SOCK" -p "$PORT" -d postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

cmd_status() {
  local b; b=$(bindir) || return 1
  [ -d "$DATA" ] && as_pg "$b/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null
}

init_cluster() {
  local b; b=$(bindir)
  mkdir -p "$DIR" "$SOCK"
  chown postgres:postgres "$DIR" "$SOCK"
  chmod 0700 "$DIR"
  log "creating the cluster in $DATA"
  local pwfile; pwfile=$(mktemp "$DIR/pw.XXXXXX")
  printf '%s\n' "$PASSWORD" >"$pwfile"
  chown postgres "$pwfile"
  as_pg "$b/initdb" -D "$DATA" -U postgres -A peer --auth-host=scram-sha-256 -E UTF8 \
    --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 || { rm -f "$pwfile"; cat "$DIR/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  cat >>"$DATA/postgresql.conf" <<EOF
# scripts/pgstack.sh
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCK'
max_connections = 200
fsync = on
synchronous_commit = on
shared_buffers = 128MB
log_min_messages = warning
EOF
  # Only the local socket (as postgres) and loopback TCP with a password.
  cat >"$DATA/pg_hba.conf" <<EOF
local all postgres peer
host  all all 127.0.0.1/32 scram-sha-256
EOF
}

cmd_start() {
  cmd_install
  if cmd_status; then cmd_env; return 0; fi
  [ -f "$DATA/PG_VERSION" ] || init_cluster
  local b; b=$(bindir)
  mkdir -p "$SOCK"; chown postgres:postgres "$SOCK"
  touch "$LOGFILE"; chown postgres "$LOGFILE"
  as_pg "$b/pg_ctl" -D "$DATA" -l "$LOGFILE" -w -t 60 start >&2 || { tail -n 30 "$LOGFILE" >&2; die "the server did not start"; }
  if [ "$(psql_q -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_q -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
    psql_q -c "CREATE DATABASE $ROLE OWNER $ROLE"
  fi
  log "started on 127.0.0.1:$PORT, dir $DIR"
  cmd_env
}

cmd_stop() {
  local b; b=$(bindir) || return 0
  [ -f "$DATA/postmaster.pid" ] || return 0
  as_pg "$b/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
}

cmd_env() {
  printf "export PGSTACK_DIR='%s' PGSTACK_PORT=%s\n" "$DIR" "$PORT"
  printf "export SHENBAO_TEST_POSTGRES='postgres://%s:%s@127.0.0.1:%s/%s'\n" "$ROLE" "$PASSWORD" "$PORT" "$ROLE"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  wipe) cmd_stop; rm -rf "$DIR" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) sed -n '2,21p' "$0" >&2; exit 2 ;;
esac
