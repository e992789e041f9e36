#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the tests and prints the URL of a server
# database the tests may create databases in (each test makes its own).
# Source it: `. tests/postgres.sh` sets RUNHOOK_TEST_DATABASE_URL and stops
# the server when the sourcing shell exits. Installs Debian's postgresql
# when absent (with sudo unless root). The server listens on 127.0.0.1 only,
# trusts local connections and runs with fsync off: for tests, never data.
pg_start() {
  local bin root port run=() sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql postgresql-client
  fi
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  root=$(mktemp -d /tmp/runhook-pg.XXXXXX)
  # initdb refuses to run as root: the server runs as Debian's postgres user then.
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$root"; run=(runuser -u postgres --); fi
  port=${RUNHOOK_TEST_PG_PORT:-$((54000 + RANDOM % 1000))}
  "${run[@]}" "$bin/initdb" -D "$root/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  "${run[@]}" "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c synchronous_commit=off -c max_connections=400 \
     -c idle_in_transaction_session_timeout=60s" start >/dev/null
  RUNHOOK_PG_ROOT=$root RUNHOOK_PG_BIN=$bin RUNHOOK_PG_RUN="${run[*]}"
  export RUNHOOK_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  trap pg_stop EXIT
}
pg_stop() {
  [ -n "${RUNHOOK_PG_ROOT:-}" ] || return 0
  $RUNHOOK_PG_RUN "$RUNHOOK_PG_BIN/pg_ctl" -D "$RUNHOOK_PG_ROOT/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$RUNHOOK_PG_ROOT"
  RUNHOOK_PG_ROOT=
}
pg_start
