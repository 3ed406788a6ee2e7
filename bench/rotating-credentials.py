#!/usr/bin/env python3
"""Seeds a Gatehouse store with COUNT distinct API keys, sessions and access tokens whose secrets
the benchmark knows, and writes one header line per credential for bench/rotate-headers.lua.

Usage: rotating-credentials.py STORE_DB JWT_SECRET_FILE OUT_DIR COUNT USER
Writes OUT_DIR/rotating-keys, OUT_DIR/rotating-sessions, OUT_DIR/rotating-jwts and prints SQL
on stdout (pipe it into sqlite3). Secrets exist only in the benchmark's scratch directory."""
import base64, hashlib, hmac, json, os, sys, time

db, secret_file, out, count, user = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
secret = open(secret_file, "rb").read()
now = int(time.time())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
print("BEGIN;")
with open(os.path.join(out, "rotating-keys"), "w") as keys, \
        open(os.path.join(out, "rotating-sessions"), "w") as sessions, \
        open(os.path.join(out, "rotating-jwts"), "w") as jwts:
    for i in range(count):
        key = f"rotkey-{i:08d}-" + os.urandom(16).hex()
        print(f"INSERT INTO api_keys VALUES ('rot{i}', '{digest(key)}', '{user}', NULL, 0, NULL, {now}, {now}, '');")
        keys.write(f"X-Api-Key: {key}\n")
        cookie = f"rotsession-{i:08d}-" + os.urandom(16).hex()
        print(f"INSERT INTO sessions VALUES ('{digest(cookie)}', '{user}', {now}, {now}, {now + 86400}, 0, '');")
        sessions.write(f"Cookie: gatehouse_session={cookie}\n")
        jti = f"rotjti{i:08d}" + os.urandom(8).hex()
        claims = {"iss": "gatehouse", "aud": "gatehouse", "sub": user, "iat": now, "exp": now + 3600,
                  "jti": jti, "roles": ["admin"], "type": "access"}
        payload = b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        print(f"INSERT INTO tokens VALUES ('{jti}', '{user}', 'access', NULL, {now}, {now + 3600}, 0, 0, '');")
        jwts.write(f"Authorization: Bearer {header}.{payload}.{signature}\n")
print("COMMIT;")
