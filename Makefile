# Everything runs inside .venv, created on first use from python3 (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmx-installed
# The PyTorch build to install; pinned to the release mmx is tested with.
TORCH ?= torch==2.14.1 torchvision==0.29.1
QUICKSTART_DIR := runs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install test test-full quickstart digits-results tables figures theory-results gpu-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Tests run on every core (pytest-xdist), one thread each: most of them start a process or train a tiny
# network, which gains more from running beside another than from a second thread.
PYTEST := OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto

# The fast tier for the edit-test loop: lint, format check, and every test not marked slow (minutes).
test: $(STAMP)
	$(BIN)/ruff check mmx tests scripts configs
	$(BIN)/ruff format --check mmx tests scripts configs
	$(PYTEST) -m "not slow"

# Everything: the fast tier and the slow tests that train through the command line (what CI runs).
test-full: $(STAMP)
	$(BIN)/ruff check mmx tests scripts configs
	$(BIN)/ruff format --check mmx tests scripts configs
	$(PYTEST)

# The three regimes on the embedded digits data, one Hydra multirun, then their comparison.
quickstart: $(STAMP)
	$(BIN)/mmx train -m mixup=none,input,manifold trainer.progress=false hydra.sweep.dir=$(QUICKSTART_DIR)
	$(BIN)/mmx tables $(QUICKSTART_DIR) --brief

# results/digits: the three regimes x five seeds on digits (deterministic CPU runs, about 15 minutes
# on 2 cores), each evaluated by mmx eval (best checkpoint; FGSM and PGD-10 up to epsilon 0.2, as
# 8x8 digits move in steps of 1/16), then their tables and figures. Kept per run: config.yaml,
# metrics.csv, summary.json, train.log, eval.json and reliability.png; checkpoints, event files and
# Hydra's machine-specific records are dropped.
DIGITS := results/digits
digits-results: $(STAMP)
	rm -rf $(DIGITS)/runs
	$(BIN)/mmx train -m mixup=none,input,manifold seed=0,1,2,3,4 trainer.deterministic=true \
		trainer.progress=false hydra.sweep.dir=$(DIGITS)/runs
	for run in $(DIGITS)/runs/*/; do $(BIN)/mmx eval run=$$run pgd.steps=10 'fgsm.epsilons=[0.01,0.03,0.1,0.2]' || exit 1; done
	rm -rf $(DIGITS)/runs/*/checkpoints $(DIGITS)/runs/*/tb $(DIGITS)/runs/*/.hydra $(DIGITS)/runs/*/.lock \
		$(DIGITS)/runs/multirun.yaml $(DIGITS)/runs/.lock
	$(MAKE) tables

# Tables and figures from the runs already there (results/digits, and any runs/ of your own).
tables: $(STAMP)
	$(BIN)/mmx tables $(DIGITS)/runs --out $(DIGITS)
	$(BIN)/mmx plot $(DIGITS)/runs --out $(DIGITS)
	test ! -d runs || $(BIN)/mmx tables runs --out results
	test ! -d runs || $(BIN)/mmx plot runs --out results/figures

# results/figures: the paper's Figure 1 (mmx spiral) and the spectrum study of its Section 3.2 on
# digits (the bottleneck MLP trained three ways, then mmx spectrum at the bottleneck); about
# 4 minutes on 2 CPU cores.
SPECTRUM := results/spectrum
figures: $(STAMP)
	$(BIN)/mmx spiral --out results/figures/spiral.png
	rm -rf $(SPECTRUM)/runs
	$(BIN)/mmx train -m experiment=spectrum/digits_mlp_none,spectrum/digits_mlp_input,spectrum/digits_mlp_manifold \
		trainer.deterministic=true trainer.progress=false hydra.sweep.dir=$(SPECTRUM)/runs
	$(BIN)/mmx spectrum $(SPECTRUM)/runs/*/ --layer 1 --out $(SPECTRUM)
	rm -rf $(SPECTRUM)/runs/*/checkpoints $(SPECTRUM)/runs/*/tb $(SPECTRUM)/runs/*/.hydra $(SPECTRUM)/runs/*/.lock \
		$(SPECTRUM)/runs/multirun.yaml $(SPECTRUM)/runs/.lock

# results/theory: is the manifold mixup loss satisfiable exactly when the mixed layer has at least d - 1
# units? The bottleneck MLP of experiment=theory/digits_mlp at each width, with and without manifold mixup
# at the bottleneck, five seeds; then the same seed of three widths trained twice as long, to check that the
# excess loss had stopped falling. The two sweeps run side by side with one thread each (deterministic on
# any machine); about 15 minutes on 2 cores. Kept per run as for results/digits.
THEORY := results/theory
THEORY_WIDTHS := 2,4,6,8,9,10,11,12,16,32
THEORY_SEEDS := 0,1,2,3,4
THEORY_CHECK_WIDTHS := 4,10,32
THEORY_EPOCHS := 60
THEORY_CHECK_EPOCHS := 120
THEORY_TRAIN := OMP_NUM_THREADS=1 $(BIN)/mmx train -m experiment=theory/digits_mlp trainer.deterministic=true \
	trainer.progress=false
theory-results: $(STAMP)
	rm -rf $(THEORY)/runs $(THEORY)/check
	$(THEORY_TRAIN) epochs=$(THEORY_EPOCHS) mixup=none model.bottleneck=$(THEORY_WIDTHS) seed=$(THEORY_SEEDS) \
		hydra.sweep.dir=$(THEORY)/runs/none & none=$$!; \
	$(THEORY_TRAIN) epochs=$(THEORY_EPOCHS) mixup=manifold model.bottleneck=$(THEORY_WIDTHS) seed=$(THEORY_SEEDS) \
		hydra.sweep.dir=$(THEORY)/runs/manifold & manifold=$$!; \
	wait $$none; a=$$?; wait $$manifold; b=$$?; test $$a = 0 && test $$b = 0
	$(THEORY_TRAIN) epochs=$(THEORY_CHECK_EPOCHS) mixup=none,manifold model.bottleneck=$(THEORY_CHECK_WIDTHS) seed=0 \
		hydra.sweep.dir=$(THEORY)/check
	OMP_NUM_THREADS=1 $(BIN)/python scripts/theory_study.py $(THEORY)/runs --check $(THEORY)/check --out $(THEORY)
	rm -rf $(THEORY)/runs/*/*/checkpoints $(THEORY)/runs/*/*/tb $(THEORY)/runs/*/*/.hydra $(THEORY)/runs/*/*/.lock \
		$(THEORY)/runs/*/multirun.yaml $(THEORY)/runs/*/.lock $(THEORY)/check/*/checkpoints $(THEORY)/check/*/tb \
		$(THEORY)/check/*/.hydra $(THEORY)/check/*/.lock $(THEORY)/check/multirun.yaml $(THEORY)/check/.lock

# Proves and measures every CUDA path on the GPU at hand (README, "Checking a GPU"); about 8 minutes,
# writing results/gpu/<gpu-name>/. On a CPU it runs the parts a CPU can run. Uses .venv when there is
# one, else python3 (a GPU machine with PyTorch preinstalled; the script installs mmx without deps).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info
