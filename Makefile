# Everything installs itself: a venv with the locked packages (requirements/dev.lock: exact versions,
# sha256 hashes), the Kafka jars (cached under ~/.cache/forethought), openssl for the secured-broker tests,
# promtool for the alert-rule tests and kcat for its producer test where apt-get can install them.
# docs/installing.md tells more.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements/dev.lock
# `make lock` runs uv from its own small venv (uv is a single binary shipped as a PyPI wheel).
UV_VERSION := 0.13.9
UV         := $(HOME)/.cache/forethought/uv-$(UV_VERSION)/bin/uv
# The Pythons the project supports (requires-python in pyproject.toml): `make test` runs the full suite on
# $(PYTHON) and the unit and contract tests on every other one found (PATH, then pyenv's versions).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
# Stamps named after content: a changed lock makes the venv anew; a changed pyproject.toml (entry points,
# package data) installs the project again.
LOCK_STAMP    := $(VENV)/.lock-$(shell cksum < $(LOCK) 2>/dev/null | cut -d' ' -f1)
PROJECT_STAMP := $(VENV)/.project-$(shell cksum < pyproject.toml 2>/dev/null | cut -d' ' -f1)

.PHONY: install client-wheel lock lock-upgrade pythons test-pythons kafka-jars tools chromium kustomize k8s-validate k8s-rules k8s-crds lint test test-unit demo bench bench-scale closed-loop-eval chaos eval eval-policy eval-real schemas asyncapi-spec check-schemas clean

# A venv made with another Python (version or interpreter) is removed first; a lock older than
# pyproject.toml's dependencies stops the install (run `make lock`). The venv is made anew from the lock
# (hash-checked, nothing else resolved), then the project itself goes in without its dependencies.
install:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
	  || { echo "PYTHON=$(PYTHON) is not a Python 3.11+ interpreter: make install PYTHON=python3.11 (or 3.12, 3.13)"; exit 1; }
	@$(PYTHON) tools/lock.py check
	@$(PYTHON) tools/venv_check.py $(VENV) || { test $$? = 2 || { echo "recreating $(VENV) with $(PYTHON)"; rm -rf $(VENV); }; }
	@test -f $(LOCK_STAMP) || { \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV) \
	  && $(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK) \
	  && touch $(LOCK_STAMP) && echo "$(VENV): $(LOCK) installed with $$($(BIN)/python -V)"; }
	@test -f $(PROJECT_STAMP) || { \
	  $(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e . \
	  && rm -f $(VENV)/.project-* && touch $(PROJECT_STAMP); }

# Re-lock after changing dependencies in pyproject.toml: requirements/{runtime,dev,eval}.lock, universal
# (valid for every supported Python and platform), keeping every locked version that still fits.
# `make lock-upgrade` moves everything to the newest versions within pyproject.toml's ranges instead.
lock: $(UV)
	$(PYTHON) tools/lock.py compile --uv $(UV)

lock-upgrade: $(UV)
	$(PYTHON) tools/lock.py compile --uv $(UV) --upgrade

$(UV):
	$(PYTHON) -m venv $(dir $(UV))..
	$(dir $(UV))pip install --quiet uv==$(UV_VERSION)

# $(call find_python,3.12): a python3.12 that starts, on PATH or among pyenv's versions; empty if none
find_python = $(firstword $(foreach p,python$(1) $(sort $(wildcard $(or $(PYENV_ROOT),$(HOME)/.pyenv)/versions/$(1).*/bin/python$(1))),$(shell $(p) -c 'import sys; assert sys.version_info[:2] == ($(subst .,$(comma),$(1)))' >/dev/null 2>&1 && echo $(p))))
comma := ,

# Which supported Pythons this machine has.
pythons:
	@$(foreach v,$(SUPPORTED_PYTHONS),echo "python$(v): $(or $(call find_python,$(v)),not found (not tested))";)

# The unit and contract tests on every supported Python found other than $(PYTHON)'s, each in .venv-3.X
# made from the same lock; the ones not found are named.
PY_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
test-pythons:
	@$(foreach v,$(filter-out $(PY_VERSION),$(SUPPORTED_PYTHONS)),$(if $(call find_python,$(v)),\
	  echo "== Python $(v): unit and contract tests in .venv-$(v)" && \
	  $(MAKE) --no-print-directory install PYTHON=$(call find_python,$(v)) VENV=.venv-$(v) && \
	  .venv-$(v)/bin/pytest -q -p no:cacheprovider tests/unit tests/contract &&,\
	  echo "== Python $(v) not found: not tested" &&)) true

# The producer SDK alone, without the worker's dependencies (docs/sdk.md): dist/forethought_client-*.whl
client-wheel: install
	$(BIN)/python -m pip wheel clients/python --no-deps --no-build-isolation -w dist/

kafka-jars: install
	@$(BIN)/forethought kafka check || (echo "Alternatively: export FORETHOUGHT_KAFKA_BOOTSTRAP=host:port, or 'docker compose up'"; exit 1)
	$(BIN)/forethought kafka fetch

# $(call apt_tool,COMMAND,DEBIAN PACKAGE,WHAT NEEDS IT): install a missing tool where apt-get can (as root)
define apt_tool
@command -v $(1) >/dev/null 2>&1 || { \
  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
    echo "installing $(1) (Debian package '$(2)') for $(3)"; \
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(2) >/dev/null) \
      || echo "$(1) could not be installed: $(3) cannot run"; \
  else echo "$(1) not found: $(3) cannot run"; fi; }
endef

tools:
	$(call apt_tool,openssl,openssl,the secured-broker tests)
	$(call apt_tool,promtool,prometheus,the alert-rule tests)
	$(call apt_tool,kcat,kcat,the kcat producer test)

# Debian's Chromium (/usr/bin/chromium), headless, for the browser test of the backtest report page.
chromium:
	$(call apt_tool,chromium,chromium,the browser test of the replay --html report)

# Kubernetes manifests (deploy/k8s, docs/deploy.md). kustomize is built from source through the Go
# module proxy (no GitHub download) into ~/.cache/forethought/bin, once per version.
TOOLS_BIN          := $(HOME)/.cache/forethought/bin
KUSTOMIZE_VERSION  := v5.7.1
KUSTOMIZE          := $(TOOLS_BIN)/kustomize
# The ServiceMonitor and PrometheusRule CRDs whose schemas validate ours (tests/contract/k8s_crds).
PROMETHEUS_OPERATOR := github.com/prometheus-operator/prometheus-operator@v0.85.0

kustomize:
	@test "$$($(KUSTOMIZE) version 2>/dev/null)" = "$(KUSTOMIZE_VERSION)" || { \
	  if command -v go >/dev/null 2>&1; then \
	    echo "installing kustomize $(KUSTOMIZE_VERSION) into $(TOOLS_BIN) (go install, a few minutes once)"; \
	    GOBIN=$(TOOLS_BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION); \
	  else echo "go not found: kustomize cannot be installed, the Kubernetes manifests cannot be validated"; fi; }

# Render every kustomization under deploy/k8s and validate each object (Kubernetes and CRD schemas).
k8s-validate: install kustomize
	FORETHOUGHT_KUSTOMIZE=$(KUSTOMIZE) $(BIN)/python tests/contract/k8s_kit.py validate

# Regenerate deploy/k8s/base/prometheusrule.yaml after a change to deploy/prometheus/alerts.yml.
k8s-rules: install
	$(BIN)/python tests/contract/k8s_kit.py rules

# Refresh the vendored CRDs from the prometheus-operator Go module (after changing its version above).
k8s-crds:
	@dir=$$(go mod download -json $(PROMETHEUS_OPERATOR) | $(PYTHON) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
	  && for kind in servicemonitors prometheusrules; do \
	       install -m 644 "$$dir/example/prometheus-operator-crd/monitoring.coreos.com_$$kind.yaml" tests/contract/k8s_crds/; \
	     done && echo "tests/contract/k8s_crds: from $(PROMETHEUS_OPERATOR)"

# ruff (pyflakes, pycodestyle, import order, bugbear, pyupgrade) and mypy over src/ (settings in pyproject.toml)
lint: install
	$(BIN)/ruff check src
	$(BIN)/mypy

test: install lint kafka-jars tools chromium k8s-validate test-pythons
	$(BIN)/pytest

test-unit: install kustomize
	$(BIN)/pytest tests/unit tests/contract

demo: install
	@if [ -z "$$FORETHOUGHT_KAFKA_BOOTSTRAP" ]; then $(MAKE) --no-print-directory kafka-jars; fi
	$(BIN)/forethought demo

bench: install kafka-jars
	$(BIN)/python benchmarks/bench.py

# Issue #12's scale figures (not part of `make test` or `make bench`; docs/durability-storage.md):
# one worker vs two in one group, and a worker on 1M customers in RocksDB (RSS, restart to ready).
bench-scale: install kafka-jars
	$(BIN)/python benchmarks/scale.py

# Issue #16's closed-loop figures (not part of `make test` or `make bench`; docs/closed-loop-results.md):
# the bandit's regret, send windows, uplift gating and the Qini coefficient on the closed-loop simulator (about 5 CPU minutes).
closed-loop-eval: install
	$(BIN)/python benchmarks/closed_loop_eval.py --customers 2000 --days 45 --seed 8

# Faults against real workers on a local broker of its own, compared with an undisturbed replay (docs/chaos.md):
# 10 SIGKILLs, a broker stop/start, a 30 s SIGSTOP, a second worker joining and leaving (about 20 minutes).
# `make chaos CHAOS_ARGS=--short` runs the integration test's small version; --only sigkill one scenario.
CHAOS_ARGS :=
chaos: install kafka-jars
	$(BIN)/python benchmarks/chaos.py --json var/chaos.json $(CHAOS_ARGS)

# Detection quality on a fixed synthetic population (10k customers x 60 days, ~2.7M events); a smaller one
# with e.g. `make eval EVAL=/tmp/small EVAL_CUSTOMERS=60 EVAL_DAYS=14` (what tests/contract/test_readme.py runs).
EVAL := var/eval
EVAL_CUSTOMERS := 10000
EVAL_DAYS := 60
eval: install $(EVAL)/events.jsonl.gz
	$(BIN)/forethought replay $(EVAL)/events.jsonl.gz --truth $(EVAL)/truth.jsonl --report $(EVAL)/report.json --triggers-out $(EVAL)/triggers.jsonl --playbooks builtin --quiet
	$(BIN)/python -c "from forethought.replay.command import print_summary; import json; print_summary(json.load(open('$(EVAL)/report.json')))"

# The shipped playbooks and policy over the same population: triggers, suppressions by reason, lift; the
# page to share is $(EVAL)/policy-report.html (docs/backtest-report.md).
eval-policy: install $(EVAL)/events.jsonl.gz
	$(BIN)/forethought replay $(EVAL)/events.jsonl.gz --truth $(EVAL)/truth.jsonl --report $(EVAL)/policy-report.json --triggers-out $(EVAL)/policy-triggers.jsonl --html $(EVAL)/policy-report.html --quiet
	$(BIN)/python -c "from forethought.replay.command import print_summary; import json; print_summary(json.load(open('$(EVAL)/policy-report.json')))"

$(EVAL)/events.jsonl.gz: | install
	@mkdir -p $(EVAL)
	$(BIN)/forethought simulate --customers $(EVAL_CUSTOMERS) --days $(EVAL_DAYS) --seed 42 --output $@ --truth $(EVAL)/truth.jsonl --quiet

# Drop-off ranking on real purchase histories (CDNOW, shipped in the lifetimes package) vs classic baselines.
eval-real: install
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/eval.lock
	$(BIN)/python benchmarks/eval_cdnow.py --json $(EVAL)/cdnow.json

schemas: install
	$(BIN)/forethought schemas export

# Refresh the vendored official AsyncAPI 3.0.0 JSON Schema (tests/contract/asyncapi) from the npm package.
ASYNCAPI_SPECS_VERSION := 6.11.1
asyncapi-spec:
	@tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent @asyncapi/specs@$(ASYNCAPI_SPECS_VERSION) >/dev/null && tar xzf asyncapi-specs-*.tgz) \
	  && install -m 644 $$tmp/package/schemas/3.0.0.json $$tmp/package/LICENSE $$tmp/package/NOTICE tests/contract/asyncapi/ \
	  && rm -rf $$tmp && sha256sum tests/contract/asyncapi/3.0.0.json && echo "tests/contract/asyncapi: @asyncapi/specs@$(ASYNCAPI_SPECS_VERSION)"

check-schemas: install
	$(BIN)/forethought schemas check

clean:
	rm -rf var .pytest_cache .hypothesis .venv-3.*
