#!/usr/bin/env bash
# Validates deploy/ offline (no container engine or cluster runs on the build machines):
#  - compose.yml against the Compose Specification's JSON schema (check-jsonschema's copy),
#  - kubernetes-sidecar.yaml against the Kubernetes API schemas (kubernetes-validate's copy),
#  - gatehouse.service with systemd-analyze verify (against the binary `swift build` made),
#  - what the files promise: only Gatehouse publishes a port, the device listens on 127.0.0.1,
#    the image runs as a non-root user with a health check, the unit is hardened and reloads.
# The validators come from PyPI into .build/deploy-validate-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build/deploy-validate-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check -q "check-jsonschema==0.39.0" "kubernetes-validate==1.37.0" "pyyaml==6.0.3"
fi
"$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec deploy/compose.yml deploy/compose.replicas.yml
"$venv/bin/kubernetes-validate" --strict deploy/kubernetes-sidecar.yaml

bin="$(swift build --show-bin-path)/gatehouse"
[ -x "$bin" ] || swift build --product gatehouse
unit=$(mktemp -d)/gatehouse.service
sed "s|/usr/local/bin/gatehouse|$bin|g" deploy/gatehouse.service > "$unit"
systemd-analyze verify "$unit"
for directive in DynamicUser=yes StateDirectory=gatehouse NoNewPrivileges=yes ProtectSystem=strict 'ExecReload=/bin/kill -HUP $MAINPID'; do
    grep -qxF "$directive" deploy/gatehouse.service || { echo "gatehouse.service lacks $directive" >&2; exit 1; }
done

k8s_config=$(mktemp -d)/config.yml
"$venv/bin/python" - "$k8s_config" <<'PY'
import sys, yaml
def fail(message):
    print("deploy: " + message, file=sys.stderr); sys.exit(1)

compose = yaml.safe_load(open("deploy/compose.yml"))
published = [name for name, service in compose["services"].items() if service.get("ports")]
if published != ["gatehouse"]:
    fail(f"compose.yml: only gatehouse may publish a port, found {published}")
replicas = yaml.safe_load(open("deploy/compose.replicas.yml"))
published = [name for name, service in replicas["services"].items() if service.get("ports")]
if published != ["gatehouse-a", "gatehouse-b"]:
    fail(f"compose.replicas.yml: only the two Gatehouses may publish ports, found {published}")
for name in published:
    secrets = {s["source"] for s in replicas["services"][name].get("secrets", [])}
    if secrets != {"postgres_password", "jwt_secret"}:
        fail(f"compose.replicas.yml: {name} needs the database password and the shared JWT secret, has {secrets}")

documents = [d for d in yaml.safe_load_all(open("deploy/kubernetes-sidecar.yaml")) if d]
pods = [d["spec"]["template"]["spec"] for d in documents if d["kind"] == "Deployment"]
services = [d for d in documents if d["kind"] == "Service"]
config = "".join(d["data"]["config.yml"] for d in documents if d["kind"] == "ConfigMap")
if "upstream: \"http://127.0.0.1:" not in config:
    fail("kubernetes-sidecar.yaml: Gatehouse's upstream must be the device on 127.0.0.1")
for pod in pods:
    for container in pod["containers"]:
        ports = [p["containerPort"] for p in container.get("ports", [])]
        if container["name"] != "gatehouse" and ports:
            fail(f"kubernetes-sidecar.yaml: the device container {container['name']} declares ports {ports}")
        if container["name"] == "gatehouse":
            probe = container.get("readinessProbe", {}).get("httpGet", {}).get("path")
            if probe != "/_gatehouse/readyz":
                fail(f"kubernetes-sidecar.yaml: gatehouse's readinessProbe should ask /_gatehouse/readyz, not {probe}")
for service in services:
    for port in service["spec"]["ports"]:
        if port.get("targetPort") not in ("http", 8080):
            fail(f"kubernetes-sidecar.yaml: the Service must target Gatehouse's port, found {port}")

dockerfile = open("deploy/Dockerfile").read().splitlines()
stages = [line for line in dockerfile if line.startswith("FROM ")]
users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
if len(stages) < 2:
    fail("Dockerfile: expected a build stage and a run stage")
if not users or users[-1] in ("root", "0"):
    fail("Dockerfile: the run stage must switch to a non-root USER")
if not any(line.startswith("HEALTHCHECK ") for line in dockerfile):
    fail("Dockerfile: no HEALTHCHECK")
open(sys.argv[1], "w").write(config)
print("deploy: compose.yml, kubernetes-sidecar.yaml, gatehouse.service and Dockerfile check out")
PY
# The sidecar's and the compose file's configs are ones Gatehouse accepts.
"$bin" check-config --config "$k8s_config"
"$bin" check-config --config deploy/config.compose.yml
"$bin" check-config --config deploy/config.replica-a.yml
"$bin" check-config --config deploy/config.replica-b.yml
