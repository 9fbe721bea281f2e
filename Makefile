# Everything installs itself: a venv with the pinned packages, the Kafka jars (cached under
# ~/.cache/forethought), openssl for the secured-broker tests and promtool for the alert-rule tests
# where apt-get can install them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install kafka-jars tools kustomize k8s-validate k8s-rules k8s-crds lint test test-unit demo bench eval eval-policy eval-real schemas asyncapi-spec check-schemas clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

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

test: install lint kafka-jars tools k8s-validate
	$(BIN)/pytest

test-unit: install kustomize
	$(BIN)/pytest tests/unit tests/contract

demo: install
	@if [ -z "$$FORETHOUGHT_KAFKA_BOOTSTRAP" ]; then $(MAKE) --no-print-directory kafka-jars; fi
	$(BIN)/forethought demo

bench: install kafka-jars
	$(BIN)/python benchmarks/bench.py

# Detection quality on a fixed synthetic population (10k customers x 60 days, ~2.7M events).
EVAL := var/eval
eval: install $(EVAL)/events.jsonl.gz
	$(BIN)/forethought replay $(EVAL)/events.jsonl.gz --truth $(EVAL)/truth.jsonl --report $(EVAL)/report.json --triggers-out $(EVAL)/triggers.jsonl --playbooks builtin --quiet
	$(BIN)/python -c "from forethought.replay.command import print_summary; import json; print_summary(json.load(open('$(EVAL)/report.json')))"

# The shipped playbooks and policy over the same population: triggers, suppressions by reason, lift.
eval-policy: install $(EVAL)/events.jsonl.gz
	$(BIN)/forethought replay $(EVAL)/events.jsonl.gz --truth $(EVAL)/truth.jsonl --report $(EVAL)/policy-report.json --triggers-out $(EVAL)/policy-triggers.jsonl --quiet
	$(BIN)/python -c "from forethought.replay.command import print_summary; import json; print_summary(json.load(open('$(EVAL)/policy-report.json')))"

$(EVAL)/events.jsonl.gz: | install
	@mkdir -p $(EVAL)
	$(BIN)/forethought simulate --customers 10000 --days 60 --seed 42 --output $@ --truth $(EVAL)/truth.jsonl --quiet

# Drop-off ranking on real purchase histories (CDNOW, shipped in the lifetimes package) vs classic baselines.
eval-real: install
	$(BIN)/python -m pip install --quiet -e '.[eval]'
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
	rm -rf var .pytest_cache .hypothesis
