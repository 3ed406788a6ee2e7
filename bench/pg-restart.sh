#!/usr/bin/env bash
# The PostgreSQL store restarted under load (issue 17's fault "pg_ctl restart while wrk runs"):
# one `gatehouse serve` (release build, one event loop) on a PostgreSQL store, wrk sending
# ROTATING distinct stored keys in turn (every request a store lookup) for DURATION seconds, a
# client creating keys through the JSON API one after the other, and `pg_ctl restart` at
# RESTART_AT seconds. Prints what the clients saw per phase (5xx outside the outage window
# count as failures), whether every key whose creation was acknowledged is in the database
# afterwards, whether the process lived, and its resident memory before, after and at the end.
# Needs nginx-light, wrk, curl, sqlite3, python3 and postgresql (Debian packages).
#   bench/pg-restart.sh
#   DURATION=30 RESTART_AT=10 bench/pg-restart.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-20}
RESTART_AT=${RESTART_AT:-6}
ROTATING=${ROTATING:-20000}
CONNS=${CONNS:-64}
work=$(mktemp -d /tmp/gatehouse-pg-restart.XXXXXX)
pg_dir=$(mktemp -d /tmp/gatehouse-pg-restart-pg.XXXXXX)
cd "$root"
bin=$("$root/deploy/build-release.sh")
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "needs PostgreSQL: apt-get install -y postgresql" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
pg_port=18100
pg_url="postgres://gatehouse@127.0.0.1:$pg_port/gatehouse"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
  [ -n "${KEEP:-}" ] && { cp "$work/serve.log" /tmp/pg-restart-serve.log; cp "$pg_dir/log" /tmp/pg-restart-pg.log; }
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U gatehouse --auth=trust >/dev/null
pg_options="-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1"
as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o "$pg_options" start >/dev/null
as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p $pg_port -U gatehouse gatehouse

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18101; location / { return 200 "ok\n"; } } }
NGINX
taskset -c 0 nginx -c "$work/nginx.conf" & pids+=($!)

# The stored keys, made in a SQLite file and copied in (as bench/identity.sh does).
(umask 077; head -c 32 /dev/urandom > "$work/jwt.secret")
echo "bench password long enough" | "$bin" user add bench --roles admin --store "$work/seed.db" >/dev/null
python3 "$here/rotating-credentials.py" "$work/seed.db" "$work/jwt.secret" "$work" "$ROTATING" bench | sqlite3 "$work/seed.db" >/dev/null
"$bin" store copy --from "$work/seed.db" --to "$pg_url" --tls disable >/dev/null

cat > "$work/config.yml" <<YAML
listen: "127.0.0.1:18102"
upstream: "http://127.0.0.1:18101"
access_log: true
audit_log: off
store: {url: "$pg_url", tls: disable}
jwt: {secret_file: $work/jwt.secret}
YAML
taskset -c 1 "$bin" serve --threads 1 --config "$work/config.yml" >"$work/serve.log" 2>&1 & gate_pid=$!; pids+=($gate_pid)
for _ in $(seq 100); do curl -fs http://127.0.0.1:18102/_gatehouse/healthz >/dev/null && break; sleep 0.1; done
rss() { ps -o rss= -p "$gate_pid" | tr -d ' '; }

# Keys created one after the other until the stop file appears; each line: status name.
python3 - "$work" <<'PY' & writer=$!; pids+=($writer)
import http.client, json, os, sys, time
work = sys.argv[1]
def call(method, path, headers, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", 18102, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError as error:
        return 0, str(error).encode()
    finally:
        conn.close()
status, body = call("POST", "/_gatehouse/api/login", {"Content-Type": "application/json"},
                    json.dumps({"username": "bench", "password": "bench password long enough"}))
assert status == 200, body
token = (json.loads(body).get("result") or json.loads(body))["token"]
auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
with open(os.path.join(work, "writes"), "w") as log:
    n = 0
    while not os.path.exists(os.path.join(work, "stop")):
        name = f"w-{n}"
        status, _ = call("POST", "/_gatehouse/api/keys", auth, json.dumps({"name": name}))
        log.write(f"{status} {name} {time.time():.3f}\n"); log.flush()
        n += 1
        time.sleep(0.02)
PY

(while kill -0 "$gate_pid" 2>/dev/null && [ ! -e "$work/stop" ]; do rss >>"$work/rss"; sleep 2; done) & pids+=($!)
start=$(date +%s.%N)
taskset -c 0 env HEADERS_FILE="$work/rotating-keys" wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$here/rotate-headers.lua" \
  http://127.0.0.1:18102/api/printer >"$work/wrk.out" 2>&1 & wrk_pid=$!
sleep "$RESTART_AT"
rss_before=$(rss)
down=$(date +%s.%N)
as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -m fast -o "$pg_options" restart >/dev/null
up=$(date +%s.%N)
sleep 2
rss_after=$(rss)
wait "$wrk_pid" || true
touch "$work/stop"; wait "$writer" || true
rss_end=$(rss)
alive=yes; kill -0 "$gate_pid" 2>/dev/null || alive=no
psql_bin="$pg_bin/psql"
as_postgres "$psql_bin" -h 127.0.0.1 -p $pg_port -U gatehouse -d gatehouse -Atc "SELECT name FROM api_keys WHERE name LIKE 'w-%'" >"$work/stored"

python3 - "$work" "$start" "$down" "$up" <<'PY'
import datetime, re, sys
work, start, down, up = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
# The outage window: from the stop to one second after the server is back (the access log
# counts whole seconds, so the window is widened to whole seconds).
lo, hi = int(down), int(up) + 2
phases = {"before": {}, "outage": {}, "after": {}}
pattern = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\+0000 .* (GET|POST|DELETE) (\S+) (\d{3}) ")
first_ok_after = None
for line in open(f"{work}/serve.log"):
    m = pattern.match(line)
    if not m:
        continue
    t = int(datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp())
    status = int(m.group(4))
    phase = "before" if t < lo else "outage" if t <= hi else "after"
    kind = "2xx" if status < 300 else "5xx" if status >= 500 else str(status)
    phases[phase][kind] = phases[phase].get(kind, 0) + 1
writes = [line.split() for line in open(f"{work}/writes")]
acknowledged = {name for status, name, _ in writes if status == "201"}
unknown = [(status, name) for status, name, _ in writes if status not in ("201",)]
stored = set(open(f"{work}/stored").read().split())
print(f"PostgreSQL down for {up - down:.2f} s (pg_ctl restart at {down - start:.1f} s into the run); outage window in the log: {hi - lo + 1} s")
print("| phase | 2xx | 5xx | other |")
print("|---|---|---|---|")
for phase, counts in phases.items():
    other = sum(v for k, v in counts.items() if k not in ("2xx", "5xx"))
    print(f"| {phase} | {counts.get('2xx', 0)} | {counts.get('5xx', 0)} | {other} |")
print(f"key creations: {len(writes)}; acknowledged (201) {len(acknowledged)}; stored {len(acknowledged & stored)}; "
      f"acknowledged but missing: {sorted(acknowledged - stored)[:10] or 'none'}; refused or failed: {len(unknown)} "
      f"(statuses {sorted(set(s for s, _ in unknown))}); stored though not acknowledged: {len(stored - acknowledged)}")
PY
echo "process alive at the end: $alive"
echo "resident memory (KiB): before the restart $rss_before, 2 s after it $rss_after, at the end $rss_end; every 2 s: $(tr '\n' ' ' <"$work/rss")"
grep -E "Requests/sec|Non-2xx|Socket errors" "$work/wrk.out" || true
