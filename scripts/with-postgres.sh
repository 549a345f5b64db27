#!/usr/bin/env bash
# with-postgres.sh CMD...: run CMD with AGENTRUNNER_TEST_POSTGRES pointing at a real Postgres.
# When the variable is already set it is used as is; otherwise Postgres is installed from
# Debian's packages if missing, a throwaway cluster is started on a free loopback port, and it
# is stopped and removed afterwards. Fails loudly when it cannot provide one.
set -euo pipefail
if [ -n "${AGENTRUNNER_TEST_POSTGRES:-}" ]; then exec "$@"; fi

die() { echo "with-postgres: $*" >&2; exit 1; }
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "Postgres is not installed and installing it needs root (apt-get install postgresql), or set AGENTRUNNER_TEST_POSTGRES"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDATA=$(mktemp -d /tmp/agentrunner-pg.XXXXXX)
as_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres "$PGDATA"; su postgres -c "$*"; else sh -c "$*"; fi; }
cleanup() { as_pg "$PGBIN/pg_ctl -D $PGDATA -m fast stop" >/dev/null 2>&1 || true; rm -rf "$PGDATA"; }
trap cleanup EXIT
as_pg "$PGBIN/initdb -D $PGDATA -A trust -U postgres" >/dev/null
# A free port can be taken between the check and the start (it may be in the ephemeral
# range other programs' connections use): try the next one then.
port=55432
for attempt in 1 2 3 4 5 6 7 8 9 10; do
  while (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done
  if as_pg "$PGBIN/pg_ctl -D $PGDATA -o '-p $port -k $PGDATA -c listen_addresses=127.0.0.1 -c max_connections=200' -l $PGDATA/log -w start" >/dev/null; then
    break
  fi
  grep -q "Address already in use" "$PGDATA/log" && [ "$attempt" -lt 10 ] || { cat "$PGDATA/log" >&2; die "Postgres did not start"; }
  port=$((port + 1))
done
export AGENTRUNNER_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
"$@"
