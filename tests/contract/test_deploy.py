"""The deployment files agree with each other and with the code, checked without a Docker engine.

docker-compose.yml, deploy/Dockerfile, the Prometheus config, alert rules and Grafana
provisioning are plain files that nothing here can run, so a drift between them (a renamed
metric, a moved port, a broker address the worker cannot reach) would only show on someone
else's machine. These tests read the files and hold them to the settings and metric names.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from forethought.ops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "forethought.json"

SERVICES = {"kafka", "topics", "worker", "senders", "traffic", "prometheus", "grafana"}
ONE_SHOT = {"topics"}  # runs to completion; everything else is long-running

# Every metric the deployment files may refer to. Until the metrics registry exists this list
# is the contract: the worker must export these names (histograms add _bucket/_sum/_count).
EXPECTED_METRICS = frozenset(
    {
        "forethought_events_in_total",  # counter {topic, type}
        "forethought_invalid_events_total",  # counter {reason}
        "forethought_processing_errors_total",  # counter {stage}
        "forethought_triggers_total",  # counter {playbook}
        "forethought_processing_seconds",  # histogram
        "forethought_event_to_trigger_seconds",  # histogram
        "forethought_consumer_lag",  # gauge {topic, partition}
        "forethought_customers",  # gauge
        "forethought_state_bytes",  # gauge
        "forethought_decisions_total",  # counter {playbook, verdict, reason, mode}
        "forethought_reengagement_total",  # counter {playbook, group, result}
        "forethought_playbook_reloads_total",  # counter {result}
        "forethought_playbooks",  # gauge {mode}
        "forethought_model_labels_total",  # counter {model, label}
        "forethought_model_labels_seen",  # gauge {partition}
        "forethought_model_checkpoints_total",  # counter
        "forethought_model_checkpoint_bytes",  # gauge {partition}
        "forethought_model_restores_total",  # counter {result}
        "forethought_behaviour_reference_minutes",  # gauge {partition}
        "forethought_behaviour_threshold",  # gauge {partition}
        "up",  # Prometheus' own scrape health
    }
)
# The senders' metrics (senders/metrics.py) and the runtime ones both registries carry (ops/metrics.py).
SENDER_METRICS = frozenset(
    {
        "forethought_sender_sends_total",  # counter {channel, status}
        "forethought_sender_delivery_seconds",  # histogram {channel}
        "forethought_sender_retries_total",  # counter {channel}
        "forethought_sender_deadletters_total",  # counter {channel}
        "forethought_sender_duplicates_total",  # counter {channel}
        "forethought_sender_invalid_triggers_total",  # counter
        "forethought_sender_ledger_entries",  # gauge
    }
)
RUNTIME_METRICS = frozenset(
    {"forethought_build_info", "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
     "process_max_fds"}
)


def exported(registry: object) -> set[str]:
    """The metric names a registry exports (counters with ``_total``, histograms as their family)."""
    families = registry.collect()  # type: ignore[attr-defined]
    return {f.name + "_total" if f.type == "counter" else f.name for f in families}


def _code_metrics() -> frozenset[str]:
    from forethought.ops.metrics import Metrics
    from forethought.senders.metrics import SenderMetrics

    return frozenset(exported(Metrics().registry) | exported(SenderMetrics().registry) | {"up"})


# Every name an alert or a dashboard panel may refer to: the code's registries, not a list kept by hand.
KNOWN_METRICS = _code_metrics()
RECORDED = frozenset({"forethought:reengagement_rate:7d", "forethought:lift_over_holdout:7d"})
ALERT_ANNOTATIONS = {"summary", "description", "runbook_url", "dashboard_url"}
SEVERITIES = {"critical", "warning", "info"}


# --- helpers ---------------------------------------------------------------------------------


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return _yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The defaults, not whatever FORETHOUGHT_* the shell running the tests happens to export."""
    for name in [n for n in os.environ if n.startswith("FORETHOUGHT_")]:
        monkeypatch.delenv(name)
    return Settings()


@pytest.fixture(scope="module")
def alert_rules() -> list[dict]:
    groups = _yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict]:
    groups = _yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"] if "record" in rule]


def test_recording_rules_are_the_documented_ones_over_known_metrics() -> None:
    rules = recording_rules()
    assert {rule["record"] for rule in rules} == RECORDED
    for rule in rules:
        names = metric_names(rule["expr"])
        assert names and names <= EXPECTED_METRICS | RECORDED, f"{rule['record']}: {names}"


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def published_ports(service: dict) -> list[tuple[int, int]]:
    """(host port, container port) pairs from the short or the long port syntax."""
    pairs = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.append((int(port["published"]), int(port["target"])))
        else:
            *host, container = str(port).split("/")[0].split(":")
            pairs.append((int(host[-1]) if host else int(container), int(container)))
    return pairs


LOOPBACK = {"127.0.0.1", "::1", "[::1]"}


def published_hosts(service: dict) -> list[str]:
    """The host address of each published port ("" when published on all interfaces).

    >>> published_hosts({"ports": ["6066:6066", "127.0.0.1:9090:9090", "[::1]:1:1/udp", 7, {"target": 1}]})
    ['', '127.0.0.1', '[::1]', '', '']
    """
    hosts = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            hosts.append(str(port.get("host_ip", "")))
        else:
            spec = str(port).split("/")[0]
            hosts.append(spec.rsplit(":", 2)[0] if spec.count(":") >= 2 else "")
    return hosts


def mounts(service: dict) -> dict[str, str]:
    """Container path → source (a named volume or a path relative to the compose file)."""
    result = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            result[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            result[target] = source
    return result


def listener_ports(kafka_env: dict[str, str]) -> dict[str, int]:
    """Listener name → port from KAFKA_LISTENERS (``NAME://host:port,...``)."""
    result = {}
    for listener in kafka_env["KAFKA_LISTENERS"].split(","):
        name, _, address = listener.strip().partition("://")
        result[name] = int(address.rpartition(":")[2])
    return result


def advertised(kafka_env: dict[str, str]) -> dict[str, str]:
    """Listener name → advertised ``host:port``."""
    items = kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    pairs = (item.strip().partition("://") for item in items)
    return {name: address for name, _, address in pairs}


def healthcheck_command(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test[1:]) if isinstance(test, list) else test


_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (histogram series mapped to their family)."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    names = set()
    for match in _IDENT.finditer(expr):
        before, after = expr[: match.start()], expr[match.end() :].lstrip()
        if after.startswith("(") or match.group().lower() in _KEYWORDS:
            continue  # a function or an operator
        if before and (before[-1].isdigit() or before[-1] in ".$"):
            continue  # a number's exponent, a duration unit, a Grafana variable
        names.add(_family(match.group()))
    return names


def _family(name: str) -> str:
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name.removesuffix(suffix) in KNOWN_METRICS:
            return name.removesuffix(suffix)
    return name


def dashboard_exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]


_LINK_BASE = re.compile(r"\{\{ with \$externalLabels\.(\w+) \}\}\{\{ \. \}\}\{\{ else \}\}([^{]*)\{\{ end \}\}")


def default_link(annotation: str, external_labels: dict[str, str] | None = None) -> str:
    """An alert link as Prometheus renders it: the external label's value, or the default when it is unset.

    >>> link = "{{ with $externalLabels.x }}{{ . }}{{ else }}http://h:1{{ end }}/d/a?viewPanel=2"
    >>> default_link(link), default_link(link, {"x": "https://g"})
    ('http://h:1/d/a?viewPanel=2', 'https://g/d/a?viewPanel=2')
    """
    labels = external_labels or {}
    return _LINK_BASE.sub(lambda match: labels.get(match.group(1)) or match.group(2), annotation)


# --- compose ---------------------------------------------------------------------------------


def test_all_services_exist(services: dict) -> None:
    assert SERVICES <= set(services)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_is_pinned(services: dict, name: str) -> None:
    image = services[name]["image"]
    if "@sha256:" in image:
        return
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
    assert tag != "latest", f"{name}: image {image!r} is not pinned"


@pytest.mark.parametrize("name", sorted(SERVICES - ONE_SHOT))
def test_long_running_service_has_healthcheck(services: dict, name: str) -> None:
    healthcheck = services[name].get("healthcheck", {})
    assert healthcheck.get("test") and not healthcheck.get("disable"), f"{name} has no healthcheck"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_memory_is_limited(services: dict, name: str) -> None:
    service = services[name]
    limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
    limit = service.get("mem_limit") or limits.get("memory")
    assert limit, f"{name} has no memory limit"


def test_depends_on_waits_for_health(services: dict) -> None:
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert isinstance(spec, dict) and "condition" in spec, f"{name} → {dependency}: no condition"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}'s health"
    worker = services["worker"]["depends_on"]
    assert worker["kafka"]["condition"] == "service_healthy"
    assert worker["topics"]["condition"] == "service_completed_successfully"
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["traffic"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_named_volumes_are_declared(compose: dict, services: dict) -> None:
    sources = {source for service in services.values() for source in mounts(service).values()}
    used = {source for source in sources if not source.startswith((".", "/"))}
    assert used <= set(compose.get("volumes") or {})


def test_every_port_is_published_on_loopback_only(services: dict) -> None:
    """A port published without a host address listens on every interface of the Docker host: the
    worker's /customers, Grafana (anonymous viewer) and an unauthenticated broker would be on the LAN."""
    wide = {name: hosts for name, service in services.items()
            if (hosts := published_hosts(service)) and not set(hosts) <= LOOPBACK}
    assert not wide, f"ports published beyond 127.0.0.1: {wide}"
    assert not [name for name, service in services.items() if service.get("network_mode") == "host"]


def test_published_hosts_reads_both_port_syntaxes() -> None:
    ports = ["6066:6066", "127.0.0.1:9090:9090", "[::1]:1:1/udp", 7, {"target": 1}, {"target": 2, "host_ip": "0.0.0.0"}]
    assert published_hosts({"ports": ports}) == ["", "127.0.0.1", "[::1]", "", "", "0.0.0.0"]


def test_the_worker_token_can_be_set_from_the_shell(services: dict) -> None:
    assert env_of(services["worker"])["FORETHOUGHT_WEB_TOKEN"] == "${FORETHOUGHT_WEB_TOKEN:-}"


def test_worker_port_matches_settings(services: dict, settings: Settings) -> None:
    worker = services["worker"]
    assert (settings.web_port, settings.web_port) in published_ports(worker)
    assert env_of(worker)["FORETHOUGHT_WEB_PORT"] == str(settings.web_port)
    assert env_of(worker)["FORETHOUGHT_WEB_HOST"] == "0.0.0.0"  # reachable from other containers
    assert f"localhost:{settings.web_port}/health" in healthcheck_command(worker)


def test_worker_state_lives_on_its_volume(services: dict, settings: Settings) -> None:
    workdir = PurePosixPath(_dockerfile_instructions("WORKDIR")[-1])
    data_dir = workdir / PurePosixPath(settings.data_dir.as_posix())
    volume_targets = [PurePosixPath(target) for target in mounts(services["worker"])]
    assert any(data_dir.is_relative_to(target) for target in volume_targets), data_dir


@pytest.mark.parametrize("name", ["topics", "worker", "traffic"])
def test_kafka_bootstrap_points_at_a_kafka_listener(services: dict, name: str) -> None:
    kafka_env = env_of(services["kafka"])
    bootstrap = env_of(services[name])["FORETHOUGHT_KAFKA_BOOTSTRAP"]
    Settings(kafka_bootstrap=bootstrap)  # the settings validator accepts it
    host, _, port = bootstrap.rpartition(":")
    assert host == "kafka"
    assert int(port) in listener_ports(kafka_env).values()
    assert bootstrap in advertised(kafka_env).values(), "the broker must advertise the address clients use"


def test_kafka_is_a_single_kraft_node(services: dict) -> None:
    kafka = services["kafka"]
    env = env_of(kafka)
    assert kafka["image"] == "apache/kafka:3.9.1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["CLUSTER_ID"] and env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listener_ports(env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    for key in ("OFFSETS_TOPIC_REPLICATION_FACTOR", "TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "TRANSACTION_STATE_LOG_MIN_ISR"):
        assert env[f"KAFKA_{key}"] == "1"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"
    external = listener_ports(env)["EXTERNAL"]
    assert advertised(env)["EXTERNAL"] == f"localhost:{external}"
    assert (external, external) in published_ports(kafka)
    check = healthcheck_command(kafka)
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server localhost:" in check
    assert int(check.split("localhost:")[1].split()[0]) in listener_ports(env).values()


def test_app_services_run_the_cli(services: dict) -> None:
    entrypoint = json.loads(_dockerfile_instructions("ENTRYPOINT")[-1])
    assert entrypoint == ["forethought"]
    expected = {
        "topics": ["topics", "create"],
        "worker": ["worker"],
        "traffic": ["simulate-traffic", "--rate", "50"],
        "senders": ["senders", "run", "--channel", "console"],
    }
    for name, command in expected.items():
        service = services[name]
        assert service["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
        assert service["command"] == command
        assert "entrypoint" not in service


def test_cli_has_the_commands_compose_runs(services: dict) -> None:
    from typer.testing import CliRunner

    from forethought.cli import app

    for name in ("topics", "worker", "traffic", "senders"):
        args = [str(a) for a in services[name]["command"]]
        values = {args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
        words = [a for a in args if not a.startswith("-") and a not in values]
        result = CliRunner().invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"{name}: `forethought {' '.join(words)}` is not a command: {result.output}"
        for option in (a for a in args if a.startswith("--")):
            assert option in result.output, f"{name}: `forethought {' '.join(words)}` has no {option}"


# --- Dockerfile ------------------------------------------------------------------------------


def _dockerfile_instructions(keyword: str) -> list[str]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line for line in text.splitlines() if line.upper().startswith(keyword + " ")]
    return [line.split(None, 1)[1].strip() for line in lines]


def test_dockerfile_builds_a_non_root_image(settings: Settings) -> None:
    assert _dockerfile_instructions("FROM")[-1].split()[0] == "python:3.11-slim"
    runs = _dockerfile_instructions("RUN")  # the lock, hash-checked, then the project alone (docs/installing.md)
    assert any("pip install --require-hashes -r requirements/runtime.lock" in run for run in runs)
    assert any("pip install --no-deps --no-build-isolation ." in run for run in runs)
    assert _dockerfile_instructions("WORKDIR")[-1] == "/app"
    assert _dockerfile_instructions("USER")[-1] not in {"root", "0"}
    assert str(settings.web_port) in _dockerfile_instructions("EXPOSE")[-1].split()


def test_dockerfile_copies_files_that_exist() -> None:
    for copy in _dockerfile_instructions("COPY"):
        if "--from=" in copy:
            continue
        *sources, _ = [part for part in copy.split() if not part.startswith("--")]
        for source in sources:
            if not any(char in source for char in "*?["):
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


# --- Prometheus ------------------------------------------------------------------------------


def test_prometheus_scrapes_the_senders(services: dict) -> None:
    from forethought.senders.settings import SenderSettings

    config = _yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "forethought-senders"]
    port = SenderSettings().web_port
    assert [t for sc in job["static_configs"] for t in sc["targets"]] == [f"senders:{port}"]
    env = env_of(services["senders"])
    assert env["FORETHOUGHT_SENDER__WEB_PORT"] == str(port) and env["FORETHOUGHT_SENDER__WEB_HOST"] == "0.0.0.0"
    assert f"localhost:{port}/health" in healthcheck_command(services["senders"])


def test_prometheus_scrapes_the_worker(services: dict, settings: Settings) -> None:
    config = _yaml(PROMETHEUS_DIR / "prometheus.yml")
    targets = [t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"worker:{settings.web_port}" in targets
    assert "worker" in services
    job = next(job for job in config["scrape_configs"] if f"worker:{settings.web_port}" in str(job))
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job["scrape_interval"] == "5s"


def test_prometheus_mounts_its_config_and_rules(services: dict) -> None:
    config = _yaml(PROMETHEUS_DIR / "prometheus.yml")
    volumes = mounts(services["prometheus"])
    config_target = PurePosixPath("/etc/prometheus/prometheus.yml")
    assert volumes[str(config_target)] == "./deploy/prometheus/prometheus.yml"
    for rule_file in config["rule_files"]:
        target = config_target.parent / rule_file
        assert volumes[str(target)] == f"./deploy/prometheus/{rule_file}"
    assert (9090, 9090) in published_ports(services["prometheus"])
    assert "localhost:9090/-/healthy" in healthcheck_command(services["prometheus"])


def test_every_alert_is_documented(alert_rules: list[dict], dashboard: dict, services: dict) -> None:
    panel_ids = {str(panel["id"]) for panel in dashboard["panels"]}
    grafana_port = published_ports(services["grafana"])[0][0]
    assert len(alert_rules) >= 5
    for rule in alert_rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert ALERT_ANNOTATIONS <= set(rule["annotations"]), rule["alert"]
        url = urlsplit(default_link(rule["annotations"]["dashboard_url"]))
        assert url.port == grafana_port and url.path.startswith(f"/d/{dashboard['uid']}/"), rule["alert"]
        assert set(parse_qs(url.query).get("viewPanel", [])) <= panel_ids, rule["alert"]


def test_the_alerts_asked_for_exist(alert_rules: list[dict]) -> None:
    names = {rule["alert"] for rule in alert_rules}
    assert {
        "ForethoughtWorkerDown",
        "ForethoughtConsumerLagHigh",
        "ForethoughtDeadLetterRateHigh",
        "ForethoughtProcessingLatencyHigh",
        "ForethoughtNoTriggers",
    } <= names


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.99, sum by (le) (rate(forethought_processing_seconds_bucket{le!="x"}[5m])))'
    expr += " > 1e3"
    assert metric_names(expr) == {"forethought_processing_seconds"}
    assert metric_names("sum(rate(typo_total[$__rate_interval])) or vector(0) offset 5m") == {"typo_total"}


def test_alerts_use_known_metrics(alert_rules: list[dict]) -> None:
    for rule in alert_rules:
        names = metric_names(rule["expr"])
        assert names and names <= KNOWN_METRICS, f"{rule['alert']}: {names - KNOWN_METRICS}"


def test_worker_exports_the_expected_metrics() -> None:
    from forethought.ops.metrics import Metrics
    from forethought.senders.metrics import SenderMetrics

    assert EXPECTED_METRICS - {"up"} | RUNTIME_METRICS <= exported(Metrics().registry)
    assert SENDER_METRICS | RUNTIME_METRICS <= exported(SenderMetrics().registry)


NEEDS_PROMTOOL = pytest.mark.skipif(
    shutil.which("promtool") is None and os.environ.get("CI", "").lower() != "true",
    reason="promtool is not on PATH (Debian package: prometheus; `make test` installs it)",
)


def _promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> None:
    result = subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"promtool {' '.join(args)}\n{result.stdout}\n{result.stderr}"


@NEEDS_PROMTOOL
def test_promtool_accepts_config_and_rules() -> None:
    _promtool("check", "config", "prometheus.yml")
    _promtool("check", "rules", "alerts.yml")
    _promtool("test", "rules", "alerts_test.yml")


@NEEDS_PROMTOOL
def test_promtool_parses_dashboard_queries(dashboard: dict, tmp_path: Path) -> None:
    """Each panel query, as a recording rule, so promtool's PromQL parser reads it."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$\w+", ".*", expr.replace("$__rate_interval", "1m"))}
        for i, expr in enumerate(dashboard_exprs(dashboard))
    ]
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    _promtool("check", "rules", "dashboard_rules.yml", cwd=tmp_path)


# --- Grafana ---------------------------------------------------------------------------------


def test_grafana_datasource_is_the_prometheus_service(services: dict) -> None:
    provisioning = _yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")
    (datasource,) = provisioning["datasources"]
    url = urlsplit(datasource["url"])
    assert datasource["type"] == "prometheus"
    assert url.hostname == "prometheus" and url.hostname in services
    assert url.port in {container for _, container in published_ports(services["prometheus"])}


def test_grafana_provisions_the_dashboard(services: dict, dashboard: dict) -> None:
    grafana = services["grafana"]
    volumes = mounts(grafana)
    assert volumes["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    (provider,) = _yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml")["providers"]
    assert volumes[provider["options"]["path"]] == "./deploy/grafana/dashboards"
    env = env_of(grafana)
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert dashboard["uid"] and dashboard["title"]


def test_dashboard_panels_use_the_provisioned_datasource(dashboard: dict) -> None:
    (datasource,) = _yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique (alerts link to them)"
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == datasource["type"] and variable["current"]["value"] == datasource["uid"]
    for panel in (panel for panel in dashboard["panels"] if panel["type"] != "row"):
        assert panel["targets"], panel["title"]
        for source in (panel["datasource"], *(target["datasource"] for target in panel["targets"])):
            assert source == {"type": datasource["type"], "uid": f"${{{variable['name']}}}"}, panel["title"]


def test_dashboard_uses_known_metrics_and_shows_them_all(dashboard: dict) -> None:
    shown: set[str] = set()
    for expr in dashboard_exprs(dashboard):
        names = metric_names(expr)
        assert names and names <= KNOWN_METRICS | RECORDED, f"{expr}: {names - KNOWN_METRICS - RECORDED}"
        shown |= names
    ours = {name for name in KNOWN_METRICS if name.startswith("forethought_")}
    assert not ours - shown, f"metrics no panel shows: {sorted(ours - shown)}"
    assert RUNTIME_METRICS | RECORDED <= shown
