#!/usr/bin/env bash
# How long a revocation made through one Gatehouse takes to be refused by another on the same
# PostgreSQL store: two `gatehouse serve` replicas (release build) on one database, in front of
# nginx. Each round creates a key through A, uses it on A and on B (both now hold it in their
# credential cache), revokes it through B's API and then asks A for it as fast as one connection
# can until A answers 401. Prints the median and the maximum over ROUNDS revocations.
# Needs nginx-light, curl, python3 and postgresql (Debian packages).
#   bench/replica-revocation.sh            # 100 revocations
#   ROUNDS=20 bench/replica-revocation.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
ROUNDS=${ROUNDS:-100}
work=$(mktemp -d /tmp/gatehouse-revocation-bench.XXXXXX)
pg_dir=$(mktemp -d /tmp/gatehouse-revocation-pg.XXXXXX)
cd "$root"
bin=$("$root/deploy/build-release.sh")
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg_bin/initdb" ] || { echo "needs PostgreSQL: apt-get install -y postgresql" >&2; exit 1; }
as_postgres() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

as_postgres "$pg_bin/initdb" -D "$pg_dir/data" -U gatehouse --auth=trust >/dev/null
as_postgres "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -o "-p 18096 -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p 18096 -U gatehouse gatehouse

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18097; location / { return 200 "ok\n"; } } }
NGINX
nginx -c "$work/nginx.conf" & pids+=($!)
(umask 077; head -c 32 /dev/urandom > "$work/jwt.secret")
for replica in a b; do
  port=$([ $replica = a ] && echo 18098 || echo 18099)
  cat > "$work/$replica.yml" <<YAML
listen: "127.0.0.1:$port"
upstream: "http://127.0.0.1:18097"
access_log: false
audit_log: off
store: {url: "postgres://gatehouse@127.0.0.1:18096/gatehouse", tls: disable}
jwt: {secret_file: $work/jwt.secret}
YAML
done
GATEHOUSE_ADMIN_PASSWORD="bench password long enough" "$bin" serve --config "$work/a.yml" >"$work/a.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs http://127.0.0.1:18098/_gatehouse/healthz >/dev/null && break; sleep 0.1; done
"$bin" serve --config "$work/b.yml" >"$work/b.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -fs http://127.0.0.1:18099/_gatehouse/healthz >/dev/null && break; sleep 0.1; done

python3 - "$ROUNDS" <<'PY'
import http.client, json, statistics, sys, time
rounds = int(sys.argv[1])
def call(conn, method, path, headers=None, body=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()
a, b = http.client.HTTPConnection("127.0.0.1", 18098), http.client.HTTPConnection("127.0.0.1", 18099)
status, body = call(a, "POST", "/_gatehouse/api/login", {"Content-Type": "application/json"},
                    json.dumps({"username": "admin", "password": "bench password long enough"}))
assert status == 200, body
result = json.loads(body)
token = (result.get("result") or result)["token"]
auth = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
delays, polls = [], []
for n in range(rounds):
    status, body = call(a, "POST", "/_gatehouse/api/keys", auth, json.dumps({"name": f"bench-{n}"}))
    assert status == 201, body
    key = {"X-Api-Key": json.loads(body)["key"]}
    assert call(a, "GET", "/api/job", key)[0] == 200 and call(b, "GET", "/api/job", key)[0] == 200
    status, body = call(b, "DELETE", f"/_gatehouse/api/keys?name=bench-{n}", auth)
    assert status == 200, body
    revoked = time.perf_counter()
    tries = 0
    while call(a, "GET", "/api/job", key)[0] != 401:
        tries += 1
    delays.append((time.perf_counter() - revoked) * 1000)
    polls.append(tries)
print(f"| revocations | median ms | max ms | requests A still let through (median, max) |")
print(f"|---|---|---|---|")
print(f"| {rounds} | {statistics.median(delays):.2f} | {max(delays):.2f} | {statistics.median(polls):.0f}, {max(polls)} |")
PY
