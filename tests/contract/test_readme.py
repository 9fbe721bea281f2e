"""The README and docs/ as a reader uses them: every link lands, every page is reachable, every command runs.

Links: every relative link in README.md and docs/**/*.md names an existing file, and an anchor names a
heading of that page (GitHub's slugs). Every page under docs/ is reachable from the README by links, so
a section moved out of the README stays findable.

Commands: every command the README shows (each line of a shell code block, and each inline code span
that starts with a command such as ``forethought``, ``make`` or ``export``) is either run here when it is
cheap and safe (``forethought schemas check``, the backtest of a small simulated population, an exported
setting read by the real settings model), or listed in ``RUN_ELSEWHERE`` with the file that runs it and
what that file must contain, or listed in ``NOT_RUN`` with the reason. A new README command that is none of
these fails ``test_every_readme_command_is_covered``. Every ``make`` target the README shows must exist.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from forethought.ops.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FORETHOUGHT = Path(sys.executable).with_name("forethought")

# Command words: an inline code span whose first word (after VAR=value assignments) is one of these is a command.
COMMAND_WORDS = {"forethought", "make", "docker", "kubectl", "curl", "export", "eval", "python", "python3", "pip",
                 "uv", "jq", "git", "cat"}

# Run by this file: a command starting with one of these is executed by the named test below.
RUN_HERE = {
    ("forethought", "schemas", "check"): "test_cheap_commands_run",
    ("forethought", "--help"): "test_cheap_commands_run",
    ("forethought", "--version"): "test_cheap_commands_run",
    ("forethought", "simulate"): "test_backtest_commands_run",
    ("forethought", "replay"): "test_backtest_commands_run",
    ("export",): "test_exported_settings_are_accepted",
    ("make", "eval"): "test_make_eval_and_eval_policy_run",
    ("make", "eval-policy"): "test_make_eval_and_eval_policy_run",
}

# Run by another test or by CI: each (file, text) pair must hold, the text being how that file runs the command.
RUN_ELSEWHERE: dict[tuple[str, ...], list[tuple[str, str]]] = {
    ("make", "test"): [(".ci/run", "make test")],
    ("make", "demo"): [("tests/integration/test_demo.py", '[make, "demo"]')],
    ("make", "k8s-validate"): [("Makefile", "test: install lint kafka-jars tools chromium k8s-validate")],
    # at a small size: the same script, 200 events, no broker
    ("make", "bench"): [("Makefile", "$(BIN)/python benchmarks/bench.py"),
                        ("tests/unit/test_bench_pieces.py", 'str(BENCHMARKS / "bench.py"), "--events"')],
    ("forethought", "kafka", "start"): [("tests/integration/test_local_broker_cli.py", '"kafka", "start"')],
    ("forethought", "kafka", "status"): [("tests/integration/test_local_broker_cli.py", '"kafka", "status"')],
    ("forethought", "kafka", "stop"): [("tests/integration/test_local_broker_cli.py", '"kafka", "stop"')],
    ("forethought", "topics", "create"): [("tests/integration/test_secured_kafka.py", 'cli("topics", "create"')],
    ("forethought", "worker"): [("tests/integration/test_worker.py", "running_worker("),
                                ("src/forethought/ops/process.py", '"forethought.cli", "worker"')],
    ("forethought", "senders", "run"): [("tests/integration/test_senders.py",
                                         '"senders", "run", "--channel", "webhook"')],
    ("forethought", "send"): [("tests/integration/test_client.py", '["send", str(path), "--bootstrap"')],
    ("make", "eval-real"): [("tests/integration/test_eval_real.py", '[make, "eval-real"')],
    # the short profile of the same harness (benchmarks/chaoskit), and the smallest sizes of scale.py
    ("make", "chaos"): [("Makefile", "$(BIN)/python benchmarks/chaos.py"),
                        ("tests/integration/test_chaos.py", "run_profile(SHORT,")],
    ("make", "bench-scale"): [("Makefile", "$(BIN)/python benchmarks/scale.py"),
                              ("tests/integration/test_bench_scale.py", '"scale.py"), "--smoke"')],
    # on 40 customers over 7 days: the same script and runs
    ("make", "closed-loop-eval"): [("Makefile", "$(BIN)/python benchmarks/closed_loop_eval.py"),
                                   ("tests/unit/test_closed_loop_eval.py", '"closed_loop_eval.py"), "--customers", "40"')],
    ("forethought", "explain"): [("tests/integration/test_why_not_two_workers.py", '"explain", owned_by_first, "--url"'),
                                 ("tests/unit/test_cli_explain.py", '"explain", "c1", "--from-replay"')],
}

# Shown but not run by any test, and why (with the file that checks what can be checked without running it).
NOT_RUN: dict[tuple[str, ...], tuple[str, str, str]] = {
    ("docker", "compose", "up"): ("CI machines have no Docker engine; the compose file is checked instead",
                                  "tests/contract/test_deploy.py", "docker-compose.yml"),
}


# ---------------------------------------------------------------------------------------------- markdown


def _outside_fences(text: str) -> Iterator[tuple[str, str | None]]:
    """Each line with the info string of the fenced block it is in (None outside a block)."""
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            continue
        yield line, fence


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.

    >>> _slug("Known limits (this release)")
    'known-limits-this-release'
    """
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for line, fence in _outside_fences(page.read_text(encoding="utf-8")):
        if fence is None and (m := re.match(r"#{1,6}\s+(.*)", line)):
            slug = _slug(m.group(1))
            anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links(page: Path) -> Iterator[str]:
    for line, fence in _outside_fences(page.read_text(encoding="utf-8")):
        if fence is None:
            yield from LINK.findall(re.sub(r"`[^`]*`", "", line))


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _local(target: str) -> bool:
    return not re.match(r"[a-z][a-z0-9+.-]*:", target)


def test_every_relative_link_lands() -> None:
    broken = []
    for page in _pages():
        for target in filter(_local, _links(page)):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no heading '{anchor}' in {dest.name})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for target in filter(_local, _links(page)):
            dest = (page.parent / target.partition("#")[0]).resolve()
            if dest.suffix == ".md" and dest.is_file() and dest not in reached:
                reached.add(dest)
                todo.append(dest)
    orphans = [str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if p.resolve() not in reached]
    assert not orphans, f"pages no link from README.md leads to (link them from the README or a linked page): {orphans}"


def test_link_checker_sees_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[ok](#title) [gone](missing.md) `[not a link](x.md)`\n```\n[code](y.md)\n```\n")
    assert list(_links(page)) == ["#title", "missing.md"]
    assert _anchors(page) == {"title"}
    assert _slug("Known limits (this release)") == "known-limits-this-release"
    assert _slug("`forethought kafka` and **Kafka's** tools") == "forethought-kafka-and-kafkas-tools"


# ---------------------------------------------------------------------------------------------- commands


def _words(command: str) -> list[str]:
    """The command's words, comments dropped, leading VAR=value assignments dropped, ``eval "$(x)"`` as x."""
    words = shlex.split(command, comments=True)
    while words and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if len(words) == 2 and words[0] == "eval" and (m := re.fullmatch(r"\$\((.*)\)", words[1])):
        return _words(m.group(1))
    return words


def readme_commands(text: str | None = None) -> list[str]:
    """Every command line of the README's shell blocks and every inline code span that is a command."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands, pending = [], ""
    for line, fence in _outside_fences(text):
        if fence in ("bash", "sh", "shell", "console"):
            line = pending + line.removeprefix("$ ").lstrip() if pending else line.removeprefix("$ ")
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1].rstrip() + " "
                continue
            pending = ""
            if _words(line):
                commands.append(line.strip())
        elif fence is None:
            for span in re.findall(r"`([^`]+)`", line):
                words = _words(span) if span.strip() else []
                if words and words[0] in COMMAND_WORDS:
                    commands.append(span.strip())
    return commands


def _matches(command: str, table: dict[tuple[str, ...], object]) -> list[tuple[str, ...]]:
    words = _words(command)
    return [prefix for prefix in table if tuple(words[: len(prefix)]) == prefix]


def test_the_readme_starts_with_make_demo_and_make_test() -> None:
    assert [_words(c) for c in readme_commands()[:2]] == [["make", "demo"], ["make", "test"]]
    assert README.read_text(encoding="utf-8").index("make demo") < README.read_text(encoding="utf-8").index("\n## ")


def test_every_readme_command_is_covered() -> None:
    uncovered = [c for c in readme_commands()
                 if not (_matches(c, RUN_HERE) or _matches(c, RUN_ELSEWHERE) or _matches(c, NOT_RUN))]
    assert not uncovered, ("README commands no test runs; run them in tests/contract/test_readme.py or list them in "
                           f"RUN_ELSEWHERE with the test that runs them: {uncovered}")


def test_commands_run_elsewhere_are_run_there() -> None:
    for prefix, evidence in RUN_ELSEWHERE.items():
        for name, needle in evidence:
            path = ROOT / name
            assert path.is_file(), f"{' '.join(prefix)}: {name} does not exist"
            assert needle in path.read_text(encoding="utf-8"), f"{' '.join(prefix)}: {name} does not contain {needle!r}"
    for prefix, (_, name, needle) in NOT_RUN.items():
        assert needle in (ROOT / name).read_text(encoding="utf-8"), f"{' '.join(prefix)}: {name} lost {needle!r}"


def test_the_coverage_check_catches_a_new_command() -> None:
    text = "```bash\nforethought worker  # run\nforethought simulate \\\n  --days 1\nrm -rf /\n```\n`make bench` `x`\n"
    commands = readme_commands(text)
    assert commands == ["forethought worker  # run", "forethought simulate --days 1", "rm -rf /", "make bench"]
    assert [c for c in commands if not (_matches(c, RUN_HERE) or _matches(c, RUN_ELSEWHERE))] == ["rm -rf /"]


def _run(words: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORETHOUGHT_", "MAKE"))}
    return subprocess.run(words, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def _selected(*prefixes: tuple[str, ...]) -> list[list[str]]:
    return [_words(c) for c in readme_commands() if any(tuple(_words(c)[: len(p)]) == p for p in prefixes)]


def _make_targets(make: str) -> set[str]:
    """The Makefile's targets, read from make's database without running any recipe.

    Not ``make -n <target>``: make runs recipe lines that contain ``$(MAKE)`` even under ``-n``, and
    ``make test``'s ``test-pythons`` runs these very tests that way (a recursion on a machine with two Pythons).
    """
    done = _run([make, "-pRrq", "-f", "Makefile", "__readme_no_such_target__"], ROOT)
    targets, skip = set(), False
    for line in done.stdout.splitlines():
        if line.startswith("# Not a target"):
            skip = True
            continue
        if not skip and (m := re.match(r"([A-Za-z0-9][^$#/\t=:]*):(?!=)", line)):
            targets.update(m.group(1).split())
        skip = False
    return targets


def test_make_targets_exist() -> None:
    make = shutil.which("make")
    if make is None:
        if os.environ.get("CI"):
            pytest.fail("make is not installed")
        pytest.skip("make is not installed")
    shown = {words[1] for words in _selected(("make",))}
    assert {"demo", "test"} <= shown
    targets = _make_targets(make)
    assert {"install", "lint"} <= targets, targets  # the database was read
    assert not shown - targets, f"the README shows make targets the Makefile lacks: {sorted(shown - targets)}"


def _forethought(words: list[str]) -> list[str]:
    assert words[0] == "forethought"
    return [str(FORETHOUGHT), *words[1:]]


def test_cheap_commands_run() -> None:
    commands = _selected(("forethought", "schemas", "check"), ("forethought", "--help"), ("forethought", "--version"))
    assert commands, "the README shows none of the cheap commands any more: drop them from RUN_HERE"
    for words in commands:
        done = _run(_forethought(words), ROOT, timeout=120)
        assert done.returncode == 0, f"{' '.join(words)}: {done.stdout}{done.stderr}"


def test_backtest_commands_run(tmp_path: Path) -> None:
    """The README's simulate-then-replay lines, in order, in an empty directory: files out, a report with triggers."""
    commands = _selected(("forethought", "simulate"), ("forethought", "replay"))
    assert [w[1] for w in commands] == ["simulate", "replay"]
    for words in commands:
        done = _run(_forethought(words), tmp_path)
        assert done.returncode == 0, f"{' '.join(words)}: {done.stdout}{done.stderr}"
        for option in ("--output", "--truth", "--triggers-out", "--report", "--html"):
            if option in words:
                assert (tmp_path / words[words.index(option) + 1]).stat().st_size > 0, option
    replay = commands[1]
    report = json.loads((tmp_path / replay[replay.index("--report") + 1]).read_text())
    assert report["records_read"] > 0 and not report["invalid_by_reason"], report
    assert sum(report["triggers_by_playbook"].values()) > 0, report
    assert "--html" in replay and "<svg" in (tmp_path / replay[replay.index("--html") + 1]).read_text()


def test_make_eval_and_eval_policy_run(tmp_path: Path) -> None:
    """The README's ``make eval`` and ``make eval-policy``, as written but on a smaller population (the
    Makefile's EVAL_CUSTOMERS and EVAL_DAYS; 10,000 customers x 60 days take 6 and 10 minutes)."""
    make = shutil.which("make")
    assert make, "make is missing"
    small = ["EVAL=" + str(tmp_path / "eval"), "EVAL_CUSTOMERS=80", "EVAL_DAYS=21"]
    for target, report in (("eval", "report.json"), ("eval-policy", "policy-report.json")):
        done = _run([make, "--no-print-directory", target, *small], ROOT, timeout=600)
        assert done.returncode == 0, f"make {target}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        found = json.loads((tmp_path / "eval" / report).read_text())
        assert found["records_read"] > 0 and sum(found["triggers_by_playbook"].values()) > 0, found
        assert "triggers by playbook" in done.stderr, done.stderr[-2000:]  # the summary it prints (on stderr)
    assert "<h1>Backtest report</h1>" in (tmp_path / "eval" / "policy-report.html").read_text()  # the page to share


def test_exported_settings_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    exports = _selected(("export",))
    assert exports
    for words in exports:
        for assignment in words[1:]:
            name, _, value = assignment.partition("=")
            for key in [k for k in os.environ if k.startswith("FORETHOUGHT_")]:
                monkeypatch.delenv(key)
            monkeypatch.setenv(name, value)
            field = name.removeprefix("FORETHOUGHT_").lower()
            assert getattr(Settings(), field) == value, name


def test_a_misspelt_exported_setting_would_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORETHOUGHT_KAFKA_BOOTSTRAPP", "host:9092")
    with pytest.raises(Exception, match="(?i)bootstrap"):
        Settings()
