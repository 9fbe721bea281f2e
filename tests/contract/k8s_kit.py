"""Render the kustomizations under deploy/k8s and validate every object they produce.

* Built-in kinds (StatefulSet, Service, ...) against the Kubernetes OpenAPI schemas that the
  ``kubernetes-validate`` package bundles, in strict mode: a misspelt field is an error.
* The prometheus-operator kinds (ServiceMonitor, PrometheusRule) against the ``openAPIV3Schema``
  of their CustomResourceDefinitions, vendored in ``k8s_crds/`` from the prometheus-operator Go
  module (``make k8s-crds`` refreshes them), made strict the way the API server prunes: an object
  may not carry a field its schema does not list.

Also the generator of ``deploy/k8s/base/prometheusrule.yaml`` from ``deploy/prometheus/alerts.yml``,
so the Kubernetes alerts are the compose stack's alerts, byte for byte.

Run as a script (``make k8s-validate``, ``make k8s-rules``)::

    python tests/contract/k8s_kit.py validate    # render + validate; exit 1 on any problem
    python tests/contract/k8s_kit.py rules       # rewrite prometheusrule.yaml from alerts.yml
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_FILE = K8S_DIR / "base" / "prometheusrule.yaml"
CRD_DIR = Path(__file__).resolve().parent / "k8s_crds"
KUSTOMIZE_CACHE = Path.home() / ".cache" / "forethought" / "bin" / "kustomize"
# The oldest Kubernetes the manifests claim to run on, and the newest the validator bundles.
K8S_VERSIONS = ("1.29.0", "latest")
RULE_NAME = "forethought"
PLACEHOLDER = "placeholder-secret-0123456789-abcdefghijklmnop"  # stands for a Secret's value: long enough for all
RULE_HEADER = ("# GENERATED from deploy/prometheus/alerts.yml by `make k8s-rules`: edit alerts.yml, then run it.\n"
               "# tests/contract/test_k8s.py fails when this file and alerts.yml disagree.\n")
Obj = dict[str, Any]


class ToolMissing(RuntimeError):
    """kustomize is not installed (``make kustomize`` installs it)."""


def kustomizations() -> list[Path]:
    """Every directory under deploy/k8s with a kustomization.yaml (the base and each overlay)."""
    return sorted(path.parent for path in K8S_DIR.rglob("kustomization.yaml"))


def kustomize_binary() -> Path | None:
    """``$FORETHOUGHT_KUSTOMIZE``, else the one ``make kustomize`` installs, else ``kustomize`` on PATH."""
    if env := os.environ.get("FORETHOUGHT_KUSTOMIZE"):
        return Path(env) if Path(env).is_file() else None
    if KUSTOMIZE_CACHE.is_file():
        return KUSTOMIZE_CACHE
    found = shutil.which("kustomize")
    return Path(found) if found else None


def render(directory: Path) -> list[Obj]:
    """``kustomize build directory`` as a list of objects; raises with kustomize's message on failure."""
    binary = kustomize_binary()
    if binary is None:
        raise ToolMissing("kustomize not found: run `make kustomize` (go install into ~/.cache/forethought/bin)")
    result = subprocess.run([str(binary), "build", str(directory)], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"kustomize build {directory} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def name_of(obj: Obj) -> str:
    """``Kind/name`` of an object, for messages.

    >>> name_of({"kind": "Service", "metadata": {"name": "web"}})
    'Service/web'
    """
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def problems(obj: Obj) -> list[str]:
    """What is wrong with ``obj`` for every Kubernetes version in :data:`K8S_VERSIONS` (empty: valid)."""
    if obj.get("apiVersion", "").startswith("monitoring.coreos.com/"):
        return _crd_problems(obj)
    import kubernetes_validate

    found = []
    for version in K8S_VERSIONS:
        wanted = kubernetes_validate.latest_version() if version == "latest" else version
        try:
            kubernetes_validate.validate(obj, wanted, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(map(str, exc.path)) or "(top)"
            found.append(f"{name_of(obj)} (Kubernetes {wanted}) at {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError:
            found.append(f"{name_of(obj)}: no schema for {obj.get('apiVersion')} {obj.get('kind')} in Kubernetes "
                         f"{wanted}")
    return found


def _crd_problems(obj: Obj) -> list[str]:
    import jsonschema

    group, _, version = obj["apiVersion"].partition("/")
    crd = _crds().get((group, obj.get("kind")))
    if crd is None:
        return [f"{name_of(obj)}: no vendored CustomResourceDefinition for {obj['apiVersion']} {obj.get('kind')}"]
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in served:
        return [f"{name_of(obj)}: {obj['apiVersion']} is not a served version ({', '.join(served)})"]
    schema = strict_schema(served[version]["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft7Validator(schema)
    found = [f"{name_of(obj)} at {'/'.join(map(str, e.path)) or '(top)'}: {e.message}"
             for e in validator.iter_errors(obj)]
    meta = obj.get("metadata", {})
    if not meta.get("name"):
        found.append(f"{name_of(obj)}: metadata.name is required")
    return found


@cache
def _crds() -> dict[tuple[str, str], Obj]:
    crds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                crds[(doc["spec"]["group"], doc["spec"]["names"]["kind"])] = doc
    return crds


def strict_schema(schema: Obj) -> Obj:
    """An OpenAPI v3 structural schema where an object with listed properties allows no others
    (unless it says ``x-kubernetes-preserve-unknown-fields``), as the API server prunes; and
    ``metadata`` gets the fields every object has.

    >>> s = strict_schema({"type": "object", "properties": {"a": {"type": "string"}}})
    >>> s["additionalProperties"]
    False
    >>> strict_schema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}).get("additionalProperties")
    """
    schema = copy.deepcopy(schema)
    _close(schema)
    schema.setdefault("properties", {})["metadata"] = {
        "type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "minLength": 1}, "namespace": {"type": "string"},
                       "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                       "annotations": {"type": "object", "additionalProperties": {"type": "string"}}},
        "additionalProperties": False}
    return schema


def _close(schema: Obj) -> None:
    if not isinstance(schema, dict):
        return
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        schema.setdefault("additionalProperties", False)
    for child in schema.get("properties", {}).values():
        _close(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            _close(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        for child in schema.get(key, []):
            _close(child)


# --- reading rendered objects ------------------------------------------------------------------


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    """The objects of one kind, in rendering order."""
    return [o for o in objects if o["kind"] == kind]


def workloads(objects: list[Obj]) -> list[Obj]:
    """The StatefulSets and Deployments."""
    return [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]


def containers(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    """(workload, container) for every container, init containers included, of every workload."""
    pods = [(w, w["spec"]["template"]["spec"]) for w in workloads(objects)]
    return [(w, c) for w, pod in pods for c in [*pod.get("initContainers", []), *pod["containers"]]]


def program(container: Obj) -> str:
    """The CLI verb a container runs (``worker``, ``senders``): the image's ENTRYPOINT is ``forethought``.

    >>> program({"args": ["senders", "run", "--channel", "webhook"]})
    'senders'
    """
    return container["args"][0]


def environment(objects: list[Obj], container: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom, then env); a Secret's value: PLACEHOLDER."""
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in of_kind(objects, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "secretKeyRef" in var.get("valueFrom", {}):
            env[var["name"]] = PLACEHOLDER
        else:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = configmaps[ref["name"]][ref["key"]]
    return env


def port_number(container: Obj, port: int | str) -> int:
    """A probe's or Service's port (a number, or the name of a container port) as a number.

    >>> port_number({"ports": [{"name": "http", "containerPort": 6066}]}, "http")
    6066
    """
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def pod_labels(workload: Obj) -> dict[str, str]:
    """The labels of a workload's pods."""
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether a ``matchLabels`` selector picks an object with ``labels``.

    >>> selects({"app": "w"}, {"app": "w", "tier": "x"}), selects({"app": "w"}, {"app": "s"})
    (True, False)
    """
    return all(labels.get(key) == value for key, value in selector.items())


# --- the PrometheusRule ---------------------------------------------------------------------------


def prometheus_rule(alerts: Obj) -> Obj:
    """The PrometheusRule object carrying the rule groups of a Prometheus rules file unchanged.

    >>> rule = prometheus_rule({"groups": [{"name": "g", "rules": []}]})
    >>> rule["kind"], rule["spec"]
    ('PrometheusRule', {'groups': [{'name': 'g', 'rules': []}]})
    """
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": RULE_NAME, "labels": {"app.kubernetes.io/name": "forethought"}},
            "spec": {"groups": alerts["groups"]}}


def rule_file_text() -> str:
    """What deploy/k8s/base/prometheusrule.yaml must contain, given deploy/prometheus/alerts.yml."""
    alerts = yaml.safe_load(ALERTS_FILE.read_text(encoding="utf-8"))
    body = yaml.safe_dump(prometheus_rule(alerts), sort_keys=False, allow_unicode=True, width=100)
    return RULE_HEADER + body


def validate_all() -> int:
    """Render every kustomization and validate each object; print what was checked; 1 on any problem."""
    failures = 0
    for directory in kustomizations():
        objects = render(directory)
        found = [problem for obj in objects for problem in problems(obj)]
        label = directory.relative_to(ROOT)
        print(f"{label}: {len(objects)} objects, {len(found) or 'no'} problems "
              f"({', '.join(sorted({o['kind'] for o in objects}))})")
        for problem in found:
            print(f"  {problem}")
        failures += len(found)
    if RULE_FILE.read_text(encoding="utf-8") != rule_file_text():
        print(f"{RULE_FILE.relative_to(ROOT)} is out of date with {ALERTS_FILE.relative_to(ROOT)}: "
              "run `make k8s-rules`")
        failures += 1
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    if argv == ["rules"]:
        RULE_FILE.write_text(rule_file_text(), encoding="utf-8")
        print(f"wrote {RULE_FILE.relative_to(ROOT)}")
        return 0
    if argv == ["validate"]:
        try:
            return validate_all()
        except ToolMissing as exc:
            print(exc, file=sys.stderr)
            return 1
    print("usage: k8s_kit.py validate | rules", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
