cd /work/wt/zoom
C=$1
V=softmax-defects+blur,$C
D=bench/results/issue12/zoom/test
mkdir -p $D
PYTHONPATH=. nice -n 5 .venv/bin/python -m bench.cam_variants --n 240 --seed 20261206 --threads 1 --zoom-wrong --variants $V > $D/test_224_heldout.md 2>&1 &
PYTHONPATH=. nice -n 5 .venv/bin/python -m bench.cam_variants --n 240 --seed 20261206 --wording fresh --threads 1 --zoom-wrong --variants $V > $D/test_224_fresh.md 2>&1 &
PYTHONPATH=. nice -n 5 .venv/bin/python -m bench.cam_variants --n 112 --seed 20261206 --size 1024 --large --threads 1 --zoom-wrong --variants $V > $D/test_large.md 2>&1 &
wait
