#!/usr/bin/env bash
# Issue 12, zoom pick "auto" (window 176 px, input 448, 1 window): the ONE test run.
# Written 2026-12-06 and committed BEFORE it ran. Test image seed 20261207 is new (never generated
# before this run); seed 20261206 was the previous zoom test and is not reused. Validation (seeds 0, 1)
# chose the setting: bench/results/issue12/zoom/auto/val_*.md (rule, fixed before the test: true-text
# hit >= 0.75 and true/wrong >= 3x on both validation seeds, then the best mean small-on-large hit).
# Run from the repository root: bash bench/results/issue12/zoom/auto/test_commands.sh
set -eu
V=softmax-defects+blur,zoom-1-128-448-prob,zoom-1-176-448-auto
D=bench/results/issue12/zoom/auto/test
mkdir -p $D
PYTHONPATH=. .venv/bin/python -m bench.cam_variants --n 240 --seed 20261207 --threads 1 --zoom-wrong --variants $V > $D/test_224_heldout.md 2>&1 &
PYTHONPATH=. .venv/bin/python -m bench.cam_variants --n 240 --seed 20261207 --wording fresh --threads 1 --zoom-wrong --variants $V > $D/test_224_fresh.md 2>&1 &
PYTHONPATH=. .venv/bin/python -m bench.cam_variants --n 112 --seed 20261207 --size 1024 --large --threads 1 --zoom-wrong --variants $V > $D/test_large.md 2>&1 &
wait
