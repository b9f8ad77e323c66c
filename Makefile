# The lab's one entry point. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT := $(shell command -v apt-get 2>/dev/null)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.DEFAULT_GOAL := help
.PHONY: help setup system jars spark-archive run test lint lock doctor clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed: install python3.11 (or run make PYTHON=/path/to/python3.11)."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	@# ipykernel stages the kernel spec in a temp folder it leaves behind: one of our own, removed
	scratch=$$(mktemp -d) && TMPDIR=$$scratch $(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lakehouse-lab)" >/dev/null && rm -r $$scratch
	touch $(STAMP)

# JupyterLab settings for this venv only (jupyter/README.md): 127.0.0.1, root allowed, no news.
JUPYTER_SETTINGS := $(VENV)/etc/jupyter/jupyter_server_config.json \
	$(VENV)/share/jupyter/lab/settings/overrides.json
$(VENV)/etc/jupyter/jupyter_server_config.json: jupyter/jupyter_server_config.json $(STAMP)
	mkdir -p $(@D) && cp $< $@
$(VENV)/share/jupyter/lab/settings/overrides.json: jupyter/overrides.json $(STAMP)
	mkdir -p $(@D) && cp $< $@

system: ## install the system packages (Java 17 check, Maven for the jars, chromium for the Data Docs test, docker-compose for the static checks, Prometheus and its Pushgateway for the metrics test, shellcheck for the workflow's scripts)
	@java -version 2>&1 | grep -q 'version "17' || { echo "Java 17 is needed: sudo apt-get install -y openjdk-17-jre-headless (macOS: brew install openjdk@17)"; exit 1; }
	@missing=""; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v prometheus >/dev/null || missing="$$missing prometheus"; \
	command -v prometheus-pushgateway >/dev/null || missing="$$missing prometheus-pushgateway"; \
	command -v shellcheck >/dev/null || missing="$$missing shellcheck"; \
	{ command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1; } || missing="$$missing docker-compose"; \
	if [ -n "$$missing" ]; then \
	  if [ -n "$(APT)" ] && { [ -z "$(SUDO)" ] || sudo -n true 2>/dev/null; }; then \
	    echo "Installing system packages:$$missing"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  elif [ -z "$(APT)" ] && command -v mvn >/dev/null; then \
	    echo "Not installed, needed by a few tests only (they skip or fail without):$$missing"; \
	  elif [ -z "$(APT)" ]; then \
	    echo "Maven is needed to fetch the jars: install it (macOS: brew install maven)."; exit 1; \
	  else \
	    echo "Missing system packages:$$missing. Run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

jars: ## fetch the pinned jars (jars/jars.lock) from Maven Central into jars/lib and check their SHA-256
	jars/fetch.sh

spark-archive: $(STAMP) jars ## build the Spark driver's class archive (faster Spark starts; kept until a jar or Java changes)
	$(BIN)/lab spark-archive

setup: $(STAMP) system jars spark-archive $(JUPYTER_SETTINGS) ## create .venv and install everything (pinned)

run: setup ## the main job: bronze -> silver -> gold over the bundled sample range
	$(BIN)/lab run

test: setup ## the whole test suite (notebooks included)
	$(BIN)/lab build-exercises --check
	$(BIN)/pytest

lint: setup ## ruff and mypy
	$(BIN)/ruff check lab_env dags tests bench
	$(BIN)/mypy

doctor: setup ## check Java, jars, catalog and storage
	$(BIN)/lab doctor

lock: ## re-pin requirements.lock from a fresh resolve of pyproject.toml
	rm -rf /tmp/lab-lock && $(PYTHON) -m venv /tmp/lab-lock
	/tmp/lab-lock/bin/pip install --quiet '.[dev]'
	{ head -2 requirements.lock; /tmp/lab-lock/bin/pip freeze --exclude lakehouse-lab; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean: ## remove the local lakehouse (./lakehouse) and caches, keep .venv
	rm -rf lakehouse .pytest_cache
