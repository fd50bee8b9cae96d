# Everything runs inside .venv, created on first use from python3 (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmx-installed
# The PyTorch build to install; pinned to the release mmx is tested with.
TORCH ?= torch==2.14.1 torchvision==0.29.1
QUICKSTART_DIR := runs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install test quickstart clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest

# The three regimes on the embedded digits data, one Hydra multirun, then their comparison.
quickstart: $(STAMP)
	$(BIN)/mmx train -m mixup=none,input,manifold trainer.progress=false hydra.sweep.dir=$(QUICKSTART_DIR)
	$(BIN)/python scripts/compare_runs.py $(QUICKSTART_DIR)

clean:
	rm -rf $(VENV) build *.egg-info
