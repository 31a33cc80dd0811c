# Two commands for a fresh machine: `make run` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The working pair on this project's machines; pip takes them from local files here.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: run test test-fast lint bench bench-quality bench-reliability bench-learning bench-examples bench-goodparts bench-latency-goodpart bench-commit-compare bench-loss bench-startup bench-db bench-gradcam bench-latency train-default setup clean-venv screenshots

setup: $(STAMP)

# Rebuilt only when the dependency list changes: fast when nothing did.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# The check prints the apt-get line for Qt's X11 libraries instead of Qt's abort when one is missing.
run: $(STAMP)
	@$(PY) -m ui.xcb_check
	$(VENV)/bin/inspector-station

# Renders every view to PNG offscreen (no display needed); look at them before a release.
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m ui.screenshots docs/screenshots

# Layer contracts, lint and format first (seconds), then every test.
lint: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

# The inner loop: no test that starts another process, trains, or builds the real default model
# (markers `subprocess`, `training`, `slow`).
test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m "not slow and not subprocess and not training"

# Issue 7, performance: per-frame latency, Grad-CAM cost, RANKCLIP vs CLIP step and loss cost, the
# decision log (commits/s, export, 1M-row verify), start-up; one after another, each writing
# bench/results/<name>.{json,md}. Run on a quiet machine (each result says whether other processes
# used the CPU meanwhile): about 35 min on 2 cores (loss 18, latency 8, decision log 4, Grad-CAM and
# start-up 1-2 each); the loss bench needs ~10 GiB RAM at batch 4096 and the decision log ~4 GiB of
# temporary disk. `make bench BENCH_ARGS=--quick`: a smoke run of each, about 10 min (it overwrites
# the results). Every script takes --device cuda.
BENCH_ARGS ?=
bench: bench-latency bench-gradcam bench-loss bench-db bench-startup

bench-latency: $(STAMP)
	$(PY) -m bench.latency $(BENCH_ARGS)

bench-gradcam: $(STAMP)
	$(PY) -m bench.gradcam_cost $(BENCH_ARGS)

bench-loss: $(STAMP)
	$(PY) -m bench.loss_cost $(BENCH_ARGS)

bench-db: $(STAMP)
	$(PY) -m bench.decision_log $(BENCH_ARGS)

bench-startup: $(STAMP)
	$(PY) -m bench.startup $(BENCH_ARGS)

# Frame latency with and without a good-part model in force, side by side in one process (issue 13).
bench-latency-goodpart: $(STAMP)
	$(PY) -m bench.latency_goodpart --threads 1 $(BENCH_ARGS)

# Commits/s and `log verify` of this tree against another checkout, alternating (issue 14):
# make bench-commit-compare BASE=/path/to/old/checkout
bench-commit-compare: $(STAMP)
	@test -n "$(BASE)" || { echo "give BASE=/path/to/a checkout to compare with (git worktree add ...)"; exit 2; }
	$(PY) -m bench.commit_compare --base $(BASE) $(BENCH_ARGS)

# CLIP vs RANKCLIP(^C, ^I) x 3 seeds on typed defects, textile few-shot and ELPV (~40 min on 2 cores).
bench-quality: $(STAMP)
	@$(PY) -c "import elpv_dataset" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench.quality

# Issue 7, long versions: 200 SIGKILLs during `inspector watch`, 5000 fuzzed files, GUI + watch for
# >= 60 s; writes bench/results/reliability.{json,md} (about 10-15 min on 2 cores).
bench-reliability: $(STAMP)
	@$(PY) -c "import hypothesis" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) -m bench.reliability

# Issue 6: the simulated plant, rounds of 50/200/1000 operator confirmations through the station's
# fine-tune, RANKCLIP vs CLIP x 3 seeds on ELPV and textiles; writes bench/results/learning_curve.{json,md}
# and docs/learning_curve.png (about 25-45 min on 2 shared cores; `--quick` smoke run: about 2-3 min).
bench-learning: $(STAMP)
	@$(PY) -c "import elpv_dataset, conformal_clip_data, matplotlib" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench.learning_curve

# Issue 13: example images against confirmed parts, no training (about 1 min once the frozen embeddings
# are cached in runs/examples_curve/, ~6 min to make them); writes bench/results/examples_curve.* and
# docs/examples_curve.png.
bench-examples: $(STAMP)
	@$(PY) -c "import elpv_dataset, conformal_clip_data, matplotlib, sklearn" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench.examples_curve $(BENCH_ARGS)

# Issue 13: the good-part model (local features of confirmed good parts) on the validation splits,
# beside the ranking (about 7 min on 2 cores to encode, then seconds); bench/results/goodpart_local.*.
bench-goodparts: $(STAMP)
	@$(PY) -c "import elpv_dataset, conformal_clip_data" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench.goodpart_local $(BENCH_ARGS)

# Reproduce the shipped default model (models/MODEL_CARD.md); about 25 min on 2 cores.
train-default: $(STAMP)
	$(VENV)/bin/inspector train --recipe default --out models/weights/inspector-default-v1

clean-venv:
	rm -rf $(VENV)
