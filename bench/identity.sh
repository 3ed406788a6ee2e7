#!/usr/bin/env bash
# Requests/s through Gatehouse (one event loop, pinned to one core; wrk and the upstream on the
# other) for each kind of credential, with few and with many stored keys and sessions:
#   config API key · stored API key · session cookie · JWT — each one credential used again and
#   again (what a browser, slicer or phone app does: answered from the credential cache), and
#   ROTATING distinct stored keys / sessions / JWTs in turn (more than the cache holds: every
#   request is a store lookup).
# The target: each within 10 % of the others, and 1,000,000 stored entries costing no more than 10.
# STORES="sqlite postgres" measures each count with the SQLite file and with a PostgreSQL database
# (a server started here in the scratch folder, pinned to Gatehouse's core, so that the store's
# work counts against the same core as SQLite's does; the rows are copied in with
# `gatehouse store copy`).
# Needs nginx-light, wrk, curl, sqlite3, python3 (Debian packages); postgresql for STORES=postgres.
#   bench/identity.sh                      # median of 5 runs of 10 s each, 64 connections, counts 10 and 1000000
#   DURATION=5 COUNTS="10 100000" ROTATING=20000 bench/identity.sh
#   HOT_ONLY=1 REPEAT=9 bench/identity.sh    # the four repeated-credential columns, more rounds
#   COLUMNS_WANTED="5 6 7" STORES=postgres bench/identity.sh   # only the in-turn columns
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
COUNTS=${COUNTS:-"10 1000000"}
ROTATING=${ROTATING:-20000}
REPEAT=${REPEAT:-5}
HOT_ONLY=${HOT_ONLY:-0}   # 1: only the four columns of repeated credentials (more rounds in the same time)
COLUMNS_WANTED=${COLUMNS_WANTED:-"1 2 3 4 5 6 7"}  # which columns to measure (1-4 repeated, 5-7 in turn)
STORES=${STORES:-sqlite}  # sqlite, postgres, or both
work=$(mktemp -d /tmp/gatehouse-identity-bench.XXXXXX)
cd "$root"
bin=$("$root/deploy/build-release.sh")

config_key=bench-key-0123456789abcdef0123456789abcdef
stored_key=stored-key-0123456789abcdef0123456789abcdef
cookie=session-0123456789abcdef0123456789abcdef0123
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18090; location / { return 200 "ok\n"; } } }
NGINX
cat > "$work/config.yml" <<YAML
listen: "127.0.0.1:18094"
upstream: "http://127.0.0.1:18090"
access_log: ${ACCESS_LOG:-false}
api_keys:
  - {name: bench, user: bench, roles: [admin], hash: "sha256:$(sha $config_key)"}
jwt: {secret_file: $work/jwt.secret}
YAML
cp "$work/config.yml" "$work/config-base.yml"

pg_port=18095
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as_postgres() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
pg_started=
start_postgres() {
  [ -n "$pg_started" ] && return
  [ -x "$pg_bin/initdb" ] || { echo "STORES=postgres needs PostgreSQL: apt-get install -y postgresql" >&2; exit 1; }
  # A folder of its own: the server's user cannot enter the scratch folder (mode 0700).
  pg_dir=$(mktemp -d /tmp/gatehouse-identity-pg.XXXXXX)
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U gatehouse --auth=trust >/dev/null
  as_postgres taskset -c 1 "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=50" start >/dev/null
  pg_started=1
}

taskset -c 0 nginx -c "$work/nginx.conf" &
nginx_pid=$!
gate_pid=
cleanup() {
  [ -n "$gate_pid" ] && kill "$gate_pid" 2>/dev/null
  kill "$nginx_pid" 2>/dev/null
  if [ -n "$pg_started" ]; then as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1; rm -rf "$pg_dir"; fi
  rm -rf "$work"
}
trap cleanup EXIT

one_run() { # wrk arguments → requests/s of one run
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" "$@" http://127.0.0.1:18094/api/printer \
    | awk '/Requests\/sec/ {printf "%.0f", $2} /Non-2xx/ {bad=1} END {if (bad) printf " (non-2xx!)"}'
}
median() { sort -n | awk '{v[NR]=$0} END {print v[int((NR + 1) / 2)]}'; } # numbers, one a line → their median
rate() { one_run -H "$1"; } # header → requests/s
rotating_rate() { HEADERS_FILE="$1" one_run -s "$here/rotate-headers.lua"; } # a different credential each request

printf '| store | stored keys & sessions | config API key | stored API key | session cookie | JWT | %s stored keys in turn | %s sessions in turn | %s JWTs in turn |\n' \
  "$ROTATING" "$ROTATING" "$ROTATING"
printf '|---|---|---|---|---|---|---|---|---|\n'
for count in $COUNTS; do for store in $STORES; do
  rm -f "$work"/gatehouse.db* "$work"/.gatehouse.db.gatehouse-store
  echo "bench password long enough" | "$bin" user add bench --roles admin --store "$work/gatehouse.db" >/dev/null
  now=$(date +%s)
  sqlite3 "$work/gatehouse.db" >/dev/null <<SQL
PRAGMA journal_mode=WAL;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $count)
INSERT INTO api_keys (name, digest, username, roles, read_only, expires, created, last_used, description)
  SELECT 'k' || i, 'sha256:' || lower(hex(randomblob(32))), 'bench', NULL, 0, NULL, $now, NULL, '' FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $count)
INSERT INTO sessions (digest, username, created, last_seen, expires, remember, origin)
  SELECT 'sha256:' || lower(hex(randomblob(32))), 'bench', $now, $now, $now + 86400, 0, '' FROM n;
INSERT INTO api_keys VALUES ('known', 'sha256:$(sha $stored_key)', 'bench', NULL, 0, NULL, $now, NULL, '');
INSERT INTO sessions VALUES ('sha256:$(sha $cookie)', 'bench', $now, $now, $now + 86400, 0, '');
COMMIT;
SQL
  rm -f "$work/jwt.secret"; (umask 077; head -c 32 /dev/urandom > "$work/jwt.secret")
  python3 "$here/rotating-credentials.py" "$work/gatehouse.db" "$work/jwt.secret" "$work" "$ROTATING" bench \
    | sqlite3 "$work/gatehouse.db" >/dev/null
  cp "$work/config-base.yml" "$work/config.yml"
  if [ "$store" = postgres ]; then
    start_postgres
    as_postgres "$pg_bin/dropdb" --if-exists -h 127.0.0.1 -p $pg_port -U gatehouse bench >/dev/null
    as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p $pg_port -U gatehouse bench
    "$bin" store copy --from "$work/gatehouse.db" --to "postgres://gatehouse@127.0.0.1:$pg_port/bench" --tls disable >/dev/null
    echo "store: {url: \"postgres://gatehouse@127.0.0.1:$pg_port/bench\", tls: disable}" >>"$work/config.yml"
  else
    echo "store: {path: $work/gatehouse.db}" >>"$work/config.yml"
  fi
  taskset -c 1 "$bin" serve --threads 1 --config "$work/config.yml" >"$work/serve.log" 2>&1 &
  gate_pid=$!
  for _ in $(seq 100); do curl -fs http://127.0.0.1:18094/_gatehouse/healthz >/dev/null && break; sleep 0.1; done
  jwt=$(curl -fs -H 'Content-Type: application/json' -d '{"username":"bench","password":"bench password long enough"}' \
    http://127.0.0.1:18094/_gatehouse/api/login | sed -E 's/.*"token":"([^"]+)".*/\1/')
  # Rounds, each measuring every column once, so that drift of the machine hits all columns alike;
  # each round starts at the next column (a VM runs faster for a while after a lighter load, which
  # otherwise always favours the first column). Each column reports the median of its REPEAT runs
  # (single runs on this VM vary by ±15 %).
  rm -f "$work"/col-*
  wanted() { [[ " $COLUMNS_WANTED " == *" $1 "* ]]; }
  measure() {
    case $1 in
      1) rate "X-Api-Key: $config_key" ;;
      2) rate "X-Api-Key: $stored_key" ;;
      3) rate "Cookie: gatehouse_session=$cookie" ;;
      4) rate "Authorization: Bearer $jwt" ;;
      5) rotating_rate "$work/rotating-keys" ;;
      6) rotating_rate "$work/rotating-sessions" ;;
      7) rotating_rate "$work/rotating-jwts" ;;
    esac
  }
  for round in $(seq "$REPEAT"); do
    for i in 0 1 2 3; do c=$(( (round + i) % 4 + 1 )); if wanted $c; then measure $c >>"$work/col-$c"; echo >>"$work/col-$c"; fi; done
    [ "$HOT_ONLY" = 1 ] && continue
    for i in 0 1 2; do c=$(( (round + i) % 3 + 5 )); if wanted $c; then measure $c >>"$work/col-$c"; echo >>"$work/col-$c"; fi; done
  done
  row="| $store | $count"
  for c in 1 2 3 4 5 6 7; do
    if [ ! -s "$work/col-$c" ]; then row+=" | -"
    elif grep -q non-2xx "$work/col-$c"; then row+=" | non-2xx!"; grep -v " 200 " "$work/serve.log" | grep -v listening | sort | uniq -c | sort -rn | head -8 >&2
    else row+=" | $(median <"$work/col-$c")"; fi
  done
  echo "$row |"
  kill "$gate_pid"; wait "$gate_pid" 2>/dev/null || true; gate_pid=
done; done
