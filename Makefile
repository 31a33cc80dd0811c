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

.PHONY: run test lint bench bench-quality bench-loss train-default setup clean-venv screenshots

setup: $(STAMP)

# Rebuilt only when the dependency list changes: fast when nothing did.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/inspector-station

# Renders every view to PNG offscreen (no display needed); look at them before a release.
screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m ui.screenshots docs/screenshots

test: $(STAMP)
	$(VENV)/bin/lint-imports --no-cache
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.loss_cost

bench-loss: $(STAMP)
	$(PY) -m bench.loss_cost

# CLIP vs RANKCLIP(^C, ^I) x 3 seeds on typed defects, textile few-shot and ELPV (~40 min on 2 cores).
bench-quality: $(STAMP)
	@$(PY) -c "import elpv_dataset" 2>/dev/null || $(PY) -m pip install -q -c constraints.txt -e '.[bench]'
	$(PY) -m bench.quality

# Reproduce the shipped default model (models/MODEL_CARD.md); about 25 min on 2 cores.
train-default: $(STAMP)
	$(VENV)/bin/inspector train --recipe default --out models/weights/inspector-default-v1

clean-venv:
	rm -rf $(VENV)
