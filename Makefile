# Set-up and the two commands of the README.  Everything installs into .venv.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DISTS := . ./xv_dsl ./xv_buffer ./plugins/xv_cpu ./plugins/xv_hdd ./plugins/xv_nvme \
         ./plugins/xv_usbcache ./plugins/xv_net
MANIFESTS := pyproject.toml requirements-dev.txt $(wildcard */pyproject.toml plugins/*/pyproject.toml)

.PHONY: setup demo test bench

$(VENV)/.installed: $(MANIFESTS)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(foreach d,$(DISTS),-e $(d)) -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/xv fabric run default examples/jobs/saxpy.yaml

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m pip install --quiet numba  # the hand-written peers of bench/
	$(BIN)/python -m bench
