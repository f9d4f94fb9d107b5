# Yunzhou chores. Every target bootstraps .venv itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install up test lint fmt clean web screenshots
WEB := src/yunzhou/web
WEB_DIST := $(WEB)/static/dist/manifest.json

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Console assets (docs/console.md): htmx and ECharts from npm, copied into static/dist (not committed).
$(WEB)/frontend/node_modules/.package-lock.json: $(WEB)/frontend/package-lock.json
	cd $(WEB)/frontend && npm ci --no-audit --no-fund

$(WEB_DIST): $(WEB)/frontend/node_modules/.package-lock.json $(WEB)/frontend/build.mjs
	cd $(WEB)/frontend && npm run build

web: $(WEB_DIST)

# Console screenshots for docs/console.md (main pages in en, zh-CN and at phone width), into docs/console/.
screenshots: $(STAMP) web
	YUNZHOU_SCREENSHOT_DIR=$(CURDIR)/docs/console $(BIN)/python -m pytest tests/e2e/web/test_console_screenshots.py -q

up: $(STAMP) web
	$(BIN)/yunzhou up

test: $(STAMP) web
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench examples
	$(BIN)/ruff check --fix src tests bench examples

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Stacks (docs/images.md): every base image built from Debian packages into ~/.cache/yunzhou/stacks
# before the suite, so no test pays for a cold stack build (a cached one costs a lookup).
.PHONY: stacks
stacks: $(STAMP)
	$(BIN)/python -m yunzhou.testing.stacks build

# Test Kubernetes control plane (docs/k8s-testenv.md): binaries cached under ~/.cache/yunzhou/k8s,
# processes and kubeconfig under .k8s-testenv/. `make k8s-up REAL_NODE=1` adds containerd + a kubelet (root).
.PHONY: k8s-build k8s-up k8s-down
k8s-build: $(STAMP)
	$(BIN)/python -m yunzhou.testing.k8s build

k8s-up: $(STAMP)
	$(BIN)/python -m yunzhou.testing.k8s up --dir .k8s-testenv $(if $(REAL_NODE),--real-node)

k8s-down: $(STAMP)
	$(BIN)/python -m yunzhou.testing.k8s down --dir .k8s-testenv
