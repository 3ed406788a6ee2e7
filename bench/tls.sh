#!/usr/bin/env bash
# HTTPS on the listener, side by side: nginx (one worker, the same API-key check as
# ../shared/bench/peers/nginx-proxy.conf) and Gatehouse (one event loop), each terminating TLS
# with the same ECDSA P-256 certificate and proxying to the same nginx upstream. Each proxy is
# pinned to core 1, wrk and the upstream to core 0. Keep-alive connections (what browsers and apps
# keep open), then new connections (a TLS handshake for every request: `Connection: close`).
# Needs nginx-light, wrk, openssl, curl (Debian packages).
#   bench/tls.sh                  # 3 rounds of 10 s, 64 connections; median per cell
#   DURATION=5 REPEAT=1 bench/tls.sh
#   GATEHOUSE_BIN=path bench/tls.sh   # a binary built before (no build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
REPEAT=${REPEAT:-3}
KEY=bench-key-0123456789abcdef0123456789abcdef
work=$(mktemp -d /tmp/gatehouse-tls-bench.XXXXXX)
bin="${GATEHOUSE_BIN:-}"
cd "$root"
[ -n "$bin" ] || bin=$("$root/deploy/build-release.sh")

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

cat > "$work/upstream.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/upstream.pid;
error_log $work/upstream-error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:18190; location / { return 200 "ok\n"; } } }
NGINX
cat > "$work/nginx-tls.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx-tls.pid;
error_log $work/nginx-tls-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  map \$http_x_api_key \$api_user { default ""; "$KEY" "bench"; }
  upstream device { server 127.0.0.1:18190; keepalive 64; }
  server {
    listen 127.0.0.1:18191 ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      if (\$api_user = "") { return 401; }
      proxy_pass http://device;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Api-Key "";
      proxy_set_header X-Remote-User \$api_user;
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header Host \$host;
    }
  }
}
NGINX
cat > "$work/config.yml" <<YAML
listen: "127.0.0.1:18192"
upstream: "http://127.0.0.1:18190"
access_log: false
audit_log: "off"
api_keys:
  - {name: bench, user: bench, roles: [admin], hash: "sha256:$(printf %s "$KEY" | sha256sum | cut -d' ' -f1)"}
store: {path: $work/gatehouse.db}
jwt: {secret_file: $work/jwt.secret}
tls: {cert_file: $work/cert.pem, key_file: $work/key.pem}
YAML

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

# A user first, in its own process: serve then skips the admin bootstrap (scrypt), and the memory
# measured is the proxy's own.
printf 'bench-admin-password\n' | "$bin" user add admin --roles admin --config "$work/config.yml" >/dev/null
taskset -c 0 nginx -c "$work/upstream.conf" & pids+=($!)
taskset -c 1 nginx -c "$work/nginx-tls.conf" & pids+=($!); nginx_pid=$!
taskset -c 1 "$bin" serve --threads 1 --config "$work/config.yml" >"$work/gatehouse.out" 2>&1 & pids+=($!); gate_pid=$!
wait_port 18190; wait_port 18191; wait_port 18192

for port in 18191 18192; do
  no=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port/api/printer")
  yes=$(curl -sk -o /dev/null -w '%{http_code}' -H "X-Api-Key: $KEY" "https://127.0.0.1:$port/api/printer")
  [ "$no" = 401 ] && [ "$yes" = 200 ] || { echo "port $port answered $no without and $yes with the key" >&2; exit 1; }
done

one() { # port, extra wrk args → req/s
  local port=$1; shift
  taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "X-Api-Key: $KEY" "$@" "https://127.0.0.1:$port/api/printer" \
    | awk '/Requests\/sec/ {printf "%.0f", $2} /Non-2xx/ {bad=1} END {if (bad) printf " (non-2xx!)"}'
}
median() { sort -n | awk '{v[NR]=$0} END {print v[int((NR + 1) / 2)]}'; }
cell() { for _ in $(seq 1 "$REPEAT"); do one "$@"; echo; done | median; }
# Resident memory now, of the largest process of the proxy's tree (nginx forks a worker).
rss() { for q in $1 $(pgrep -P "$1" 2>/dev/null); do awk '/VmRSS/ {print $2}' /proc/$q/status 2>/dev/null; done | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}'; }

rss_start_n=$(rss $nginx_pid); rss_start_g=$(rss $gate_pid)
nk=$(cell 18191); gk=$(cell 18192)
rss_keep_n=$(rss $nginx_pid); rss_keep_g=$(rss $gate_pid)
nc=$(cell 18191 -H "Connection: close"); gc=$(cell 18192 -H "Connection: close")
echo "| HTTPS, $CONNS connections, req/s (median of $REPEAT × ${DURATION} s) | nginx | Gatehouse | Gatehouse / nginx |"
echo "|---|---|---|---|"
echo "| keep-alive | $nk | $gk | $(awk -v a="$gk" -v b="$nk" 'BEGIN{printf "%.2f", a/b}') |"
echo "| new connection per request | $nc | $gc | $(awk -v a="$gc" -v b="$nc" 'BEGIN{printf "%.2f", a/b}') |"
echo "| RSS MiB after start | $rss_start_n | $rss_start_g | |"
echo "| RSS MiB after keep-alive | $rss_keep_n | $rss_keep_g | |"
echo "| RSS MiB after new connections | $(rss $nginx_pid) | $(rss $gate_pid) | |"
