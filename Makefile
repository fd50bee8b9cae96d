# Everything runs inside .venv, created on first use from python3 (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmx-installed
# The PyTorch build to install; pinned to the release mmx is tested with.
TORCH ?= torch==2.14.1 torchvision==0.29.1
QUICKSTART_DIR := runs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install test quickstart digits-results tables clean

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

# results/digits: the three regimes x five seeds on digits (deterministic CPU runs, about 15 minutes
# on 2 cores), then their table and figures. Kept per run: config.yaml, metrics.csv, summary.json,
# train.log; checkpoints, event files and Hydra's machine-specific records are dropped.
DIGITS := results/digits
digits-results: $(STAMP)
	rm -rf $(DIGITS)/runs
	$(BIN)/mmx train -m mixup=none,input,manifold seed=0,1,2,3,4 trainer.deterministic=true \
		trainer.progress=false hydra.sweep.dir=$(DIGITS)/runs
	rm -rf $(DIGITS)/runs/*/checkpoints $(DIGITS)/runs/*/tb $(DIGITS)/runs/*/.hydra $(DIGITS)/runs/multirun.yaml
	$(MAKE) tables

# Tables and figures from the runs already there (results/digits, and any runs/ of your own).
tables: $(STAMP)
	$(BIN)/mmx tables $(DIGITS)/runs --out $(DIGITS)
	$(BIN)/mmx plot $(DIGITS)/runs --out $(DIGITS)
	test ! -d runs || $(BIN)/mmx tables runs --out results
	test ! -d runs || $(BIN)/mmx plot runs --out results/figures

clean:
	rm -rf $(VENV) build *.egg-info
