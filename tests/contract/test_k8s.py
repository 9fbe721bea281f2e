"""The Kubernetes manifests (deploy/k8s) render, validate, and agree with the code they deploy.

Rendered with the real kustomize and validated with real schemas (k8s_kit.py): what
`kubectl apply -k` would send. Then held to the code: every FORETHOUGHT_* variable is a setting
the process reads (and the whole environment loads), secrets come from Secrets, the probes get an
answer from the real web apps without a token, ports are the settings' defaults, the alerts are
deploy/prometheus/alerts.yml and select a job the ServiceMonitors produce.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import k8s_kit
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from k8s_kit import PLACEHOLDER, containers, environment, of_kind, pod_labels, port_number, program, selects, workloads
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from forethought.ops.settings import Settings
from forethought.senders.cli import SenderChoice
from forethought.senders.metrics import SenderMetrics, web_app
from forethought.senders.settings import SenderAppSettings, SenderSettings
from forethought.stream.web import OPEN_PATHS
from forethought.stream.worker import build_worker

Obj = dict[str, Any]
# The program each container runs (its args) and the settings model that program reads.
PROGRAMS: dict[str, type[BaseSettings]] = {"worker": Settings, "topics": Settings, "senders": SenderAppSettings}
DIRS = k8s_kit.kustomizations()


def _tool_missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: a missing tool fails)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Obj]]:
    """Every kustomization (by its path under deploy/k8s), rendered."""
    try:
        return {str(d.relative_to(k8s_kit.K8S_DIR)): k8s_kit.render(d) for d in DIRS}
    except k8s_kit.ToolMissing as exc:
        _tool_missing(str(exc))
        raise


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No FORETHOUGHT_* from the shell running the tests."""
    for name in [n for n in os.environ if n.startswith("FORETHOUGHT_")]:
        monkeypatch.delenv(name)
    return monkeypatch


# --- helpers ---------------------------------------------------------------------------------


def setting(model: type[BaseModel], variable: str) -> Any:
    """The pydantic field a ``FORETHOUGHT_*`` variable sets in ``model`` (nested with ``__``), or None.

    >>> setting(SenderAppSettings, "FORETHOUGHT_SENDER__WEB_PORT").default
    6067
    >>> setting(Settings, "FORETHOUGHT_WEB_PORTT") is None, setting(Settings, "WEB_PORT") is None
    (True, True)
    """
    if not variable.startswith("FORETHOUGHT_"):
        return None
    *parents, leaf = variable.removeprefix("FORETHOUGHT_").lower().split("__")
    for name in parents:
        field = model.model_fields.get(name)
        if field is None or not (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)):
            return None
        model = field.annotation
    return model.model_fields.get(leaf)


def is_secret(field: Any) -> bool:
    """Whether a setting (a pydantic field, None for no setting) holds a secret."""
    return field is not None and "SecretStr" in str(field.annotation)


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app)
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def status_of(server: TestServer, path: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(server.make_url(path)) as response:
        return response.status


# --- schema validation -----------------------------------------------------------------------


@pytest.mark.parametrize("directory", DIRS, ids=lambda d: str(d.relative_to(k8s_kit.K8S_DIR)))
def test_every_kustomization_renders_and_every_object_validates(rendered: dict, directory: Path) -> None:
    objects = rendered[str(directory.relative_to(k8s_kit.K8S_DIR))]
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "ServiceMonitor",
            "PrometheusRule"} <= kinds
    assert [problem for obj in objects for problem in k8s_kit.problems(obj)] == []


def test_the_kit_s_examples_hold() -> None:
    import doctest

    result = doctest.testmod(k8s_kit)
    assert result.attempted >= 5 and result.failed == 0


def test_the_vendored_crds_are_the_version_the_makefile_names() -> None:
    makefile = (k8s_kit.ROOT / "Makefile").read_text(encoding="utf-8")
    version = re.search(r"^PROMETHEUS_OPERATOR\s*:=\s*\S+@v(\S+)", makefile, re.MULTILINE).group(1)  # type: ignore[union-attr]
    crds = {path.name: yaml.safe_load(path.read_text(encoding="utf-8")) for path in k8s_kit.CRD_DIR.glob("*.yaml")}
    assert set(crds) == {"monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml"}
    assert {crd["metadata"]["annotations"]["operator.prometheus.io/version"] for crd in crds.values()} == {version}


def test_there_is_a_base_and_a_production_overlay() -> None:
    assert {str(d.relative_to(k8s_kit.K8S_DIR)) for d in DIRS} >= {"base", "overlays/production"}


def _set(obj: Obj, path: str, value: Any) -> Obj:
    """A copy of ``obj`` with ``value`` at a dotted ``path`` (digits index lists)."""
    obj = copy.deepcopy(obj)
    *parents, leaf = path.split(".")
    node: Any = obj
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(leaf) if leaf.isdigit() else leaf] = value
    return obj


BREAKAGES: dict[str, tuple[str, str, Any]] = {
    # name: (kind, dotted path, value)
    "misspelt probe field": ("StatefulSet", "spec.template.spec.containers.0.livenesProbe", {"httpGet": {"port": 1}}),
    "replicas as a word": ("StatefulSet", "spec.replicas", "two"),
    "port as a name": ("Deployment", "spec.template.spec.containers.0.ports.0.containerPort", "http"),
    "unknown security field": ("Deployment", "spec.template.spec.securityContext.runAsRoot", False),
    "pdb with a bad field": ("PodDisruptionBudget", "spec.maxUnavailabel", 1),
    "service port not a number": ("Service", "spec.ports.0.port", "http"),
    "servicemonitor misspelt endpoint field": ("ServiceMonitor", "spec.endpoints.0.intervall", "15s"),
    "servicemonitor interval not a duration": ("ServiceMonitor", "spec.endpoints.0.interval", "soon"),
    "prometheusrule rule without its expr": ("PrometheusRule", "spec.groups.0.rules.0.expr", None),
    "prometheusrule unknown api version": ("PrometheusRule", "apiVersion", "monitoring.coreos.com/v2"),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_validator_rejects_a_broken_object(rendered: dict, breakage: str) -> None:
    kind, path, value = BREAKAGES[breakage]
    obj = of_kind(rendered["base"], kind)[0]
    assert k8s_kit.problems(obj) == []
    broken = _set(obj, path, value)
    if value is None:
        del broken["spec"]["groups"][0]["rules"][0]["expr"]
    assert k8s_kit.problems(broken), f"{breakage}: accepted"


def test_a_broken_overlay_fails_make_k8s_validate_s_checks(rendered: dict, tmp_path: Path) -> None:
    """An overlay with a typo in a patch renders (kustomize does not know the schema) but fails validation."""
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(k8s_kit.K8S_DIR / "base", tmp_path)], "patches": [{"path": "typo.yaml"}]}))
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "forethought-worker"},
        "spec": {"template": {"spec": {"containers": [{"name": "worker", "resource": {"limits": {"cpu": 1}}}]}}}}))
    found = [p for obj in k8s_kit.render(tmp_path) for p in k8s_kit.problems(obj)]
    assert len(found) == len(k8s_kit.K8S_VERSIONS) and all("resource" in p for p in found), found


def test_a_kustomization_that_does_not_build_is_an_error(rendered: dict, tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RuntimeError, match="missing.yaml"):
        k8s_kit.render(tmp_path)


def test_make_k8s_validate_passes_and_says_what_it_checked(rendered: dict) -> None:
    result = subprocess.run([sys.executable, str(Path(k8s_kit.__file__)), "validate"], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    for directory in DIRS:
        assert f"{directory.relative_to(k8s_kit.ROOT)}: " in result.stdout and "no problems" in result.stdout


# --- alerts ----------------------------------------------------------------------------------


def test_the_prometheus_rule_is_the_alert_rules_file(rendered: dict) -> None:
    assert k8s_kit.RULE_FILE.read_text(encoding="utf-8") == k8s_kit.rule_file_text(), "run `make k8s-rules`"
    alerts = yaml.safe_load(k8s_kit.ALERTS_FILE.read_text(encoding="utf-8"))
    for objects in rendered.values():
        (rule,) = of_kind(objects, "PrometheusRule")
        assert rule["spec"]["groups"] == alerts["groups"]


def test_every_job_the_alerts_select_is_scraped_by_a_service_monitor(rendered: dict) -> None:
    alerts = yaml.safe_load(k8s_kit.ALERTS_FILE.read_text(encoding="utf-8"))
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    wanted = {job for expr in exprs for job in re.findall(r'\bjob\s*=\s*"([^"]+)"', expr)}
    assert wanted, "the alerts select no job: this test would prove nothing"
    for objects in rendered.values():
        services = of_kind(objects, "Service")
        jobs = set()
        for monitor in of_kind(objects, "ServiceMonitor"):
            for service in services:
                labels = service["metadata"].get("labels", {})
                if selects(monitor["spec"]["selector"]["matchLabels"], labels):
                    jobs.add(labels.get(monitor["spec"]["jobLabel"], service["metadata"]["name"]))
                    ports = {p["name"] for p in service["spec"]["ports"]}
                    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
                    assert {e["path"] for e in monitor["spec"]["endpoints"]} == {"/metrics"}
        assert wanted <= jobs


# --- the code behind the manifests -----------------------------------------------------------


def test_every_variable_is_a_setting_of_the_program_that_reads_it(rendered: dict) -> None:
    for objects in rendered.values():
        for workload, container in containers(objects):
            model = PROGRAMS[program(container)]
            env = environment(objects, container)
            unknown = [name for name in env if setting(model, name) is None]
            assert unknown == [], f"{workload['metadata']['name']}: not settings of {model.__name__}: {unknown}"


def test_secret_settings_come_from_secrets_and_nothing_else_does(rendered: dict) -> None:
    for objects in rendered.values():
        configmap_keys = {key for cm in of_kind(objects, "ConfigMap") for key in cm.get("data", {})}
        for _, container in containers(objects):
            model = PROGRAMS[program(container)]
            for var in container.get("env", []):
                from_secret = "secretKeyRef" in var.get("valueFrom", {})
                assert from_secret == is_secret(setting(model, var["name"])), var["name"]
            assert not [key for key in configmap_keys if is_secret(setting(model, key))]


def test_the_manifests_environment_loads_as_settings(rendered: dict, clean_env: pytest.MonkeyPatch) -> None:
    """What each pod would start with is a valid configuration (TLS/SASL consistency included)."""
    for objects in rendered.values():
        for _, container in containers(objects):
            for name in [n for n in os.environ if n.startswith("FORETHOUGHT_")]:
                clean_env.delenv(name)
            env = environment(objects, container)
            for name, value in env.items():
                clean_env.setenv(name, value)
            loaded = PROGRAMS[program(container)]()
            if isinstance(loaded, SenderAppSettings):
                channels = container["args"][container["args"].index("--channel") + 1 :: 2]
                assert [SenderChoice(c) for c in channels] and loaded.sender.missing_for(channels) == []
                assert loaded.sender.web_host == "0.0.0.0"
            elif program(container) == "worker":
                assert loaded.web_host == "0.0.0.0" and loaded.web_token is not None
            else:
                assert container["args"] == ["topics", "create"]  # the worker's init container


def test_the_worker_keeps_its_state_on_its_own_volume(rendered: dict) -> None:
    for objects in rendered.values():
        (worker,) = of_kind(objects, "StatefulSet")
        (container,) = worker["spec"]["template"]["spec"]["containers"]
        claims = {t["metadata"]["name"] for t in worker["spec"]["volumeClaimTemplates"]}
        data_dir = Path(environment(objects, container)["FORETHOUGHT_DATA_DIR"])
        assert data_dir.is_absolute()
        mounts = [m for m in container["volumeMounts"] if m["name"] in claims]
        assert any(data_dir.is_relative_to(m["mountPath"]) for m in mounts), (data_dir, mounts)
        assert worker["spec"]["serviceName"] in {s["metadata"]["name"] for s in of_kind(objects, "Service")
                                                 if s["spec"].get("clusterIP") == "None"}


def test_ports_are_the_settings_defaults(rendered: dict) -> None:
    defaults = {"worker": Settings.model_fields["web_port"].default,
                "senders": SenderSettings.model_fields["web_port"].default}
    variables = {"worker": "FORETHOUGHT_WEB_PORT", "senders": "FORETHOUGHT_SENDER__WEB_PORT"}
    for objects in rendered.values():
        for workload, container in containers(objects):
            name = program(container)
            if name == "topics":  # a one-shot init container: serves nothing
                assert "ports" not in container
                continue
            assert [p["containerPort"] for p in container["ports"]] == [defaults[name]]
            assert environment(objects, container).get(variables[name], str(defaults[name])) == str(defaults[name])
            for service in of_kind(objects, "Service"):
                if selects(service["spec"]["selector"], pod_labels(workload)):
                    assert [p["port"] for p in service["spec"]["ports"]] == [defaults[name]]
                    assert all(port_number(container, p["targetPort"]) == defaults[name]
                               for p in service["spec"]["ports"])


def probes(container: Obj) -> dict[str, tuple[str, int]]:
    """Probe kind → (path, port number)."""
    found = {}
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[kind]["httpGet"]
        found[kind] = (get["path"], port_number(container, get["port"]))
    return found


async def test_worker_probes_are_answered_by_the_worker_without_a_token(
    rendered: dict, clean_env: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    """The real worker web app (token set, as in the manifests): the probe paths exist and need no token."""
    objects = rendered["overlays/production"]
    (worker,) = of_kind(objects, "StatefulSet")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    for name, value in environment(objects, container).items():
        clean_env.setenv(name, value)
    settings = Settings(data_dir=tmp_path)
    found = probes(container)
    assert {path for path, _ in found.values()} == {"/health", "/ready"}
    assert found["startupProbe"] == found["livenessProbe"] and found["livenessProbe"][0] == "/health"
    assert found["readinessProbe"][0] == "/ready"
    assert {port for _, port in found.values()} == {settings.web_port}
    built = build_worker(settings)
    built.app.web.blueprints.apply(built.app.web)
    async with serving(built.app.web.web_app) as server:
        assert await status_of(server, "/health") == 200
        assert await status_of(server, "/ready") == 503  # no partitions: not ready, and not 401/404
        assert await status_of(server, "/customers/x") == 401  # the token from the Secret is in force
    assert {path for path, _ in found.values()} <= OPEN_PATHS


async def test_sender_probes_are_answered_by_the_senders_web_app(rendered: dict) -> None:
    objects = rendered["base"]
    (senders,) = of_kind(objects, "Deployment")
    (container,) = senders["spec"]["template"]["spec"]["containers"]
    found = probes(container)
    assert found["startupProbe"] == found["livenessProbe"] and found["livenessProbe"][0] == "/health"
    assert found["readinessProbe"][0] == "/ready"
    assert {port for _, port in found.values()} == {SenderSettings.model_fields["web_port"].default}
    ready = {"ready": False}
    app = web_app(SenderMetrics(), lambda: dict(ready))
    assert {path for path, _ in found.values()} <= {r.resource.canonical for r in app.router.routes() if r.resource}
    async with serving(app) as server:
        assert await status_of(server, "/health") == 200
        assert await status_of(server, "/ready") == 503
        ready["ready"] = True
        assert await status_of(server, "/ready") == 200


# --- the pods' safety ------------------------------------------------------------------------


def _image_uid() -> int:
    text = (k8s_kit.ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    return int(re.search(r"useradd [^\n]*--uid (\d+)", text).group(1))  # type: ignore[union-attr]


def test_pods_run_as_the_image_user_without_privileges(rendered: dict) -> None:
    uid = _image_uid()
    for objects in rendered.values():
        for workload, container in containers(objects):
            pod = workload["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["runAsUser"] == uid
            assert pod["automountServiceAccountToken"] is False
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}  # the one writable scratch dir
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]


def test_every_workload_has_a_disruption_budget(rendered: dict) -> None:
    for objects in rendered.values():
        budgets = of_kind(objects, "PodDisruptionBudget")
        for workload in workloads(objects):
            assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels(workload).items()
            matching = [b for b in budgets if selects(b["spec"]["selector"]["matchLabels"], pod_labels(workload))]
            assert len(matching) == 1, workload["metadata"]["name"]


def test_production_overlay_secures_kafka_and_replicates(rendered: dict) -> None:
    objects = rendered["overlays/production"]
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"forethought"}
    for _, container in containers(objects):
        env = environment(objects, container)
        assert env["FORETHOUGHT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["FORETHOUGHT_KAFKA_SASL_PASSWORD"] == PLACEHOLDER  # i.e. from a Secret
        assert int(env["FORETHOUGHT_KAFKA_REPLICATION_FACTOR"]) >= 3
