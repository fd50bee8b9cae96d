# Everything runs inside .venv, created on first use from python3 (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mmx-installed
# The PyTorch build to install; pinned to the release mmx is tested with.
TORCH ?= torch==2.14.1 torchvision==0.29.1
QUICKSTART_DIR := runs/quickstart/$(shell date +%Y-%m-%d_%H-%M-%S)
QUICKSTART_ARGS :=

.PHONY: install test test-full test-slurm quickstart digits-results tables figures theory-results lowlabel-results \
	multilayer-results rnn-results likelihood-results family-results studies gpu-check clean

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
	$(PYTEST) -m "not slow and not slurm"

# Everything (what CI runs): the fast tier, the slow tests that train through the command line, and beside them the
# tests against a real Slurm cluster (they mostly wait for the scheduler), whose output follows when both are done.
SLURM_LOG ?= $(SLURM_DIR).log
test-full: $(STAMP)
	$(BIN)/ruff check mmx tests scripts configs
	$(BIN)/ruff format --check mmx tests scripts configs
	@$(MAKE) --no-print-directory test-slurm > $(SLURM_LOG) 2>&1 & slurm=$$!; \
	$(PYTEST) -m "not slurm"; status=$$?; \
	wait $$slurm; slurm_status=$$?; \
	echo "----- the Slurm tier ($(SLURM_LOG)):"; cat $(SLURM_LOG); \
	test $$status = 0 && test $$slurm_status = 0

# The tests marked slurm, one at a time, against the one-node cluster scripts/slurm_cluster.sh starts (as root;
# installing Debian's packages when missing) and stops again, also when a test fails. Where it cannot start, it
# says why and the tests are skipped, each with its reason.
SLURM_DIR ?= /tmp/mmx-slurm-$(shell id -u)
test-slurm: $(STAMP)
	@if MMX_SLURM_DIR=$(SLURM_DIR) scripts/slurm_cluster.sh start; then \
		started=$$(date +%s); \
		SLURM_CONF=$(SLURM_DIR)/slurm.conf OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:xdist -m slurm; status=$$?; \
		MMX_SLURM_DIR=$(SLURM_DIR) scripts/slurm_cluster.sh stop; \
		echo "the Slurm tier took $$(( $$(date +%s) - started )) s"; exit $$status; \
	else \
		OMP_NUM_THREADS=1 $(BIN)/python -m pytest -p no:xdist -m slurm; \
	fi

# What a committed study keeps of its runs: config.yaml, metrics.csv, summary.json, train.log (and eval.json);
# checkpoints, event files, Hydra's machine-specific records, locks and mmx eval's reliability diagrams (their bins
# stay in eval.json) go. $(call prune_runs,FOLDER)
define prune_runs
find $(1) \( -name checkpoints -o -name tb -o -name .hydra \) -type d -prune -exec rm -rf {} +
find $(1) \( -name .lock -o -name multirun.yaml -o -name reliability.png \) -type f -delete
endef

# Two commands side by side, one thread each (so that each is deterministic on any machine); fails if either
# fails. $(call side_by_side,COMMAND,COMMAND)
define side_by_side
$(1) & first=$$!; $(2) & second=$$!; wait $$first; a=$$?; wait $$second; b=$$?; test $$a = 0 && test $$b = 0
endef
STUDY_TRAIN := OMP_NUM_THREADS=1 $(BIN)/mmx train -m trainer.deterministic=true trainer.progress=false

# The three regimes on the embedded digits data, a tenth of the training set held out to choose the best epoch,
# one Hydra multirun, then their comparison.
quickstart: $(STAMP)
	$(BIN)/mmx train -m mixup=none,input,manifold dataset.val_size=0.1 trainer.progress=false $(QUICKSTART_ARGS) \
		hydra.sweep.dir=$(QUICKSTART_DIR)
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
	$(call prune_runs,$(DIGITS)/runs)
	$(MAKE) tables

# Tables and figures from the runs already there (results/digits, and any runs/ of your own).
tables: $(STAMP)
	$(BIN)/mmx tables $(DIGITS)/runs --out $(DIGITS)
	$(BIN)/mmx plot $(DIGITS)/runs --out $(DIGITS)
	test ! -d runs || $(BIN)/mmx tables runs --out results
	test ! -d runs || $(BIN)/mmx plot runs --out results/figures

# results/figures: the paper's Figure 1 (mmx spiral) and the spectrum study of its Section 3.2 on
# digits (the bottleneck MLP trained three ways, then mmx spectrum at the bottleneck); about
# 2 minutes on 2 CPU cores.
SPECTRUM := results/spectrum
figures: $(STAMP)
	$(BIN)/mmx spiral --out results/figures/spiral.png
	rm -rf $(SPECTRUM)/runs
	$(BIN)/mmx train -m experiment=spectrum/digits_mlp_none,spectrum/digits_mlp_input,spectrum/digits_mlp_manifold \
		trainer.deterministic=true trainer.progress=false hydra.sweep.dir=$(SPECTRUM)/runs
	$(BIN)/mmx spectrum $(SPECTRUM)/runs/*/ --layer 1 --out $(SPECTRUM)
	$(call prune_runs,$(SPECTRUM)/runs)

# The paper's open questions (README, "Beyond the paper: the studies"). Each study trains two sweeps side by
# side, one thread each (deterministic on any machine), keeps its runs as results/digits does, and writes
# runs.md/.csv/.tex (mean ± std over 5 seeds per cell) and its figures; a few minutes each on 2 cores.
STUDY_SEEDS := 0,1,2,3,4

# Small labelled sets: 5, 10, 20 and 50 digits of each class (500 steps each), no / input / manifold mixup.
LOWLABEL := results/lowlabel
LOWLABEL_SMALL := 5,10
LOWLABEL_LARGE := 20,50
LOWLABEL_ARGS :=
LOWLABEL_TRAIN := $(STUDY_TRAIN) experiment=lowlabel/digits mixup=none,input,manifold seed=$(STUDY_SEEDS) $(LOWLABEL_ARGS)
lowlabel-results: $(STAMP)
	rm -rf $(LOWLABEL)/runs
	$(call side_by_side,$(LOWLABEL_TRAIN) dataset.labels_per_class=$(LOWLABEL_SMALL) hydra.sweep.dir=$(LOWLABEL)/runs/small \
		,$(LOWLABEL_TRAIN) dataset.labels_per_class=$(LOWLABEL_LARGE) hydra.sweep.dir=$(LOWLABEL)/runs/large)
	$(call prune_runs,$(LOWLABEL)/runs)
	$(BIN)/mmx tables $(LOWLABEL)/runs --out $(LOWLABEL)
	$(BIN)/mmx plot $(LOWLABEL)/runs --out $(LOWLABEL) --against dataset.labels_per_class

# Several layers, on 5 digits of each class: the paper's Table 5 eligible sets at one point per step, and
# {0, 1, 2} at K = 2 and 3 points per step, beside no mixing.
MULTILAYER := results/multilayer
MULTILAYER_SETS := [0],[1],[2],[0,1],[1,2],[2,3],[1,2,3],[0,1,2],[0,1,2,3]
MULTILAYER_K := 2,3
MULTILAYER_ARGS :=
MULTILAYER_TRAIN := $(STUDY_TRAIN) experiment=multilayer/digits seed=$(STUDY_SEEDS) $(MULTILAYER_ARGS)
MULTILAYER_SWEEPS := $(MULTILAYER_TRAIN) 'mixup.points=$(MULTILAYER_SETS)' hydra.sweep.dir=$(MULTILAYER)/runs/sets
MULTILAYER_OTHERS := $(MULTILAYER_TRAIN) 'mixup.points=[0,1,2]' mixup.points_per_step=$(MULTILAYER_K) \
	hydra.sweep.dir=$(MULTILAYER)/runs/k && $(MULTILAYER_TRAIN) mixup=none hydra.sweep.dir=$(MULTILAYER)/runs/none
multilayer-results: $(STAMP)
	rm -rf $(MULTILAYER)/runs
	$(call side_by_side,$(MULTILAYER_SWEEPS),($(MULTILAYER_OTHERS)))
	$(call prune_runs,$(MULTILAYER)/runs)
	$(BIN)/mmx tables $(MULTILAYER)/runs --out $(MULTILAYER)
	$(BIN)/mmx plot $(MULTILAYER)/runs --out $(MULTILAYER) --against mixup.points

# Recurrent networks: the GRU over digit rows, no / input / manifold mixup at its hidden sequences.
RNN := results/rnn
RNN_ARGS :=
RNN_TRAIN := $(STUDY_TRAIN) experiment=rnn/digits_gru seed=$(STUDY_SEEDS) $(RNN_ARGS)
RNN_PLAIN := $(RNN_TRAIN) mixup=none,input hydra.sweep.dir=$(RNN)/runs/none_input
RNN_MANIFOLD := $(RNN_TRAIN) mixup=manifold 'mixup.points=[0,1,2],[1,2]' hydra.sweep.dir=$(RNN)/runs/manifold
rnn-results: $(STAMP)
	rm -rf $(RNN)/runs
	$(call side_by_side,$(RNN_PLAIN),$(RNN_MANIFOLD))
	$(call prune_runs,$(RNN)/runs)
	$(BIN)/mmx tables $(RNN)/runs --out $(RNN)
	$(BIN)/mmx plot $(RNN)/runs --out $(RNN) --against mixup.points

# The likelihood study (README, "Where mixing lowers the NLL"): none / input / manifold on digits (width 16) and
# mnist5k (width 8, stride-2 stem), a validation split in every run, across training lengths on the whole labelled
# set and across labelled-set sizes at the middle length's steps; every run evaluated on its last checkpoint with a
# temperature fitted on its validation split. mnist5k's lengths in one process, the rest in the other; the make
# target's wall-clock time goes into likelihood.md.
LIKELIHOOD := results/likelihood
LIKELIHOOD_DIGITS_EPOCHS := 5,20,80
LIKELIHOOD_MNIST_EPOCHS := 5,15,45
LIKELIHOOD_SIZES := 10,50
LIKELIHOOD_ARGS :=
LIKELIHOOD_SIZE_ARGS :=
LIKELIHOOD_TRAIN := $(STUDY_TRAIN) mixup=none,input,manifold seed=$(STUDY_SEEDS) $(LIKELIHOOD_ARGS)
LIKELIHOOD_EVAL = for run in $(LIKELIHOOD)/runs/$(1)/*/; do OMP_NUM_THREADS=1 $(BIN)/mmx eval run=$$run \
	checkpoint=last deformations=false 'fgsm.epsilons=[]' ood.max_images=100 progress=false >/dev/null || exit 1; done
LIKELIHOOD_SWEEP = $(LIKELIHOOD_TRAIN) experiment=likelihood/$(1) $(2) hydra.sweep.dir=$(LIKELIHOOD)/runs/$(3) \
	&& $(call LIKELIHOOD_EVAL,$(3))
LIKELIHOOD_A := $(call LIKELIHOOD_SWEEP,mnist5k,epochs=$(LIKELIHOOD_MNIST_EPOCHS),mnist5k_length)
LIKELIHOOD_B := $(call LIKELIHOOD_SWEEP,digits,epochs=$(LIKELIHOOD_DIGITS_EPOCHS),digits_length) \
	&& $(call LIKELIHOOD_SWEEP,digits_fewer_labels,dataset.labels_per_class=$(LIKELIHOOD_SIZES) $(LIKELIHOOD_SIZE_ARGS),digits_labels) \
	&& $(call LIKELIHOOD_SWEEP,mnist5k_fewer_labels,dataset.labels_per_class=$(LIKELIHOOD_SIZES) $(LIKELIHOOD_SIZE_ARGS),mnist5k_labels)
likelihood-results: $(STAMP)
	rm -rf $(LIKELIHOOD)/runs && mkdir -p $(LIKELIHOOD)/runs && date +%s > $(LIKELIHOOD)/runs/started
	$(call side_by_side,($(LIKELIHOOD_A)),($(LIKELIHOOD_B)))
	$(call prune_runs,$(LIKELIHOOD)/runs)
	$(BIN)/mmx tables $(LIKELIHOOD)/runs --out $(LIKELIHOOD)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/likelihood_study.py $(LIKELIHOOD)/runs --out $(LIKELIHOOD) \
		--seconds $$(( $$(date +%s) - $$(cat $(LIKELIHOOD)/runs/started) ))
	rm $(LIKELIHOOD)/runs/started

# The mixing-family study (README, "The mixing family"): none, input, manifold, CutMix, Feature CutMix, Noisy Feature
# Mixup and RegMixup with their shipped defaults, on mnist5k (width 8, stride-2 stem) at the whole labelled set and at
# FAMILY_LABELS images per class, every run 525 steps, five seeds, a validation split choosing each run's best epoch;
# each run evaluated by mmx eval on that checkpoint (a temperature fitted on the split, FGSM at FAMILY_EPSILON). One
# process per labelled set, one thread each; the make target's wall-clock time goes into family.md.
FAMILY := results/family
FAMILY_METHODS := none,input,manifold,cutmix,manifold_cutmix,nfm,regmixup
FAMILY_LABELS := 10
FAMILY_EPSILON := 0.1
FAMILY_ARGS :=
FAMILY_LABELS_ARGS :=
FAMILY_TRAIN := $(STUDY_TRAIN) mixup=$(FAMILY_METHODS) seed=$(STUDY_SEEDS) $(FAMILY_ARGS)
FAMILY_EVAL = for run in $(FAMILY)/runs/$(1)/*/; do OMP_NUM_THREADS=1 $(BIN)/mmx eval run=$$run checkpoint=best \
	deformations=false 'fgsm.epsilons=[$(FAMILY_EPSILON)]' ood.max_images=100 progress=false >/dev/null || exit 1; done
FAMILY_ALL := $(FAMILY_TRAIN) experiment=family/mnist5k hydra.sweep.dir=$(FAMILY)/runs/all && $(call FAMILY_EVAL,all)
FAMILY_FEW := $(FAMILY_TRAIN) experiment=family/mnist5k_fewer_labels dataset.labels_per_class=$(FAMILY_LABELS) \
	$(FAMILY_LABELS_ARGS) hydra.sweep.dir=$(FAMILY)/runs/few && $(call FAMILY_EVAL,few)
family-results: $(STAMP)
	rm -rf $(FAMILY)/runs && mkdir -p $(FAMILY)/runs && date +%s > $(FAMILY)/runs/started
	$(call side_by_side,($(FAMILY_ALL)),($(FAMILY_FEW)))
	$(call prune_runs,$(FAMILY)/runs)
	$(BIN)/mmx tables $(FAMILY)/runs --out $(FAMILY)
	OMP_NUM_THREADS=1 $(BIN)/python scripts/family_study.py $(FAMILY)/runs --out $(FAMILY) \
		--seconds $$(( $$(date +%s) - $$(cat $(FAMILY)/runs/started) ))
	rm $(FAMILY)/runs/started

studies: lowlabel-results multilayer-results rnn-results theory-results likelihood-results family-results

# results/theory: is the manifold mixup loss satisfiable exactly when the mixed layer has at least d - 1
# units? The bottleneck MLP of experiment=theory/digits_mlp at each width, mixed at the bottleneck only, with two
# heads on the bottleneck: 2 hidden layers (with and without manifold mixup) and a linear classifier (the theory's
# "implicit linear model", whose best reachable loss per width affine_floor computes); the linear head also on
# 3- and 5-class subsets (d - 1 = 2 and 4). Five seeds; then seed 0 of three widths trained twice as long, to
# check how far the excess loss still falls. Two processes side by side, one thread each; about 15 minutes.
THEORY := results/theory
THEORY_WIDTHS := 2,3,4,6,8,9,10,11,12,16,32
THEORY_WIDTHS_3 := 1,2,3,4,6
THEORY_WIDTHS_5 := 2,3,4,5,6,8
THEORY_SEEDS := 0,1,2,3,4
THEORY_EPOCHS := 60
THEORY_LINEAR_EPOCHS := 120
THEORY_CHECK_WIDTHS := 4,9,16
THEORY_BASE := $(STUDY_TRAIN) experiment=theory/digits_mlp
THEORY_DEEP := $(THEORY_BASE) seed=$(THEORY_SEEDS) epochs=$(THEORY_EPOCHS) model.after=2 mixup=none,manifold \
	model.bottleneck=$(THEORY_WIDTHS) hydra.sweep.dir=$(THEORY)/runs/deep \
	&& $(THEORY_BASE) seed=0 epochs=$$(( 2 * $(THEORY_EPOCHS) )) model.after=2 model.bottleneck=$(THEORY_CHECK_WIDTHS) \
		hydra.sweep.dir=$(THEORY)/check/deep
THEORY_TRAIN_LINEAR := $(THEORY_BASE) seed=$(THEORY_SEEDS) epochs=$(THEORY_LINEAR_EPOCHS) model.after=0
THEORY_LINEAR := $(THEORY_TRAIN_LINEAR) model.bottleneck=$(THEORY_WIDTHS) hydra.sweep.dir=$(THEORY)/runs/linear \
	&& $(THEORY_TRAIN_LINEAR) 'dataset.classes=[0,1,2]' model.bottleneck=$(THEORY_WIDTHS_3) hydra.sweep.dir=$(THEORY)/runs/d3 \
	&& $(THEORY_TRAIN_LINEAR) 'dataset.classes=[0,1,2,3,4]' model.bottleneck=$(THEORY_WIDTHS_5) \
		hydra.sweep.dir=$(THEORY)/runs/d5 \
	&& $(THEORY_BASE) seed=0 epochs=$$(( 2 * $(THEORY_LINEAR_EPOCHS) )) model.after=0 model.bottleneck=$(THEORY_CHECK_WIDTHS) \
		hydra.sweep.dir=$(THEORY)/check/linear
theory-results: $(STAMP)
	rm -rf $(THEORY)/runs $(THEORY)/check
	$(call side_by_side,($(THEORY_DEEP)),($(THEORY_LINEAR)))
	OMP_NUM_THREADS=1 $(BIN)/python scripts/theory_study.py $(THEORY)/runs --check $(THEORY)/check --out $(THEORY)
	$(call prune_runs,$(THEORY)/runs $(THEORY)/check)

# Proves and measures every CUDA path on the GPU at hand (README, "Checking a GPU"); about 8 minutes,
# writing results/gpu/<gpu-name>/. On a CPU it runs the parts a CPU can run. Uses .venv when there is
# one, else python3 (a GPU machine with PyTorch preinstalled; the script installs mmx without deps).
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(GPU_PYTHON) scripts/gpu_check.py

clean:
	rm -rf $(VENV) build *.egg-info
