#!/usr/bin/env bash
# The replay report (replay_bench.py --all, plus Optuna's GPSampler) on a lent device machine's
# 16 CPU cores. The replay needs no GPU (GPSampler runs its torch code on the CPU); what the
# machine adds is cores: ~2 h of one core here fits in one call there. It has no Optuna, Keras
# or Keras Tuner: they travel as wheels in .whl/ (see /work/.library/device/README.md), and
# hpsearch is put on the path from this tree (search/ is the package, objectives/ and storage/
# its sub-packages, as pyproject.toml maps them). Results land in $OUT.
set -euo pipefail
OUT=${OUT:-/tmp/replay-out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
mkdir -p /tmp/hp/hpsearch
cp -r search/. /tmp/hp/hpsearch/
ln -sfn "$PWD/objectives" /tmp/hp/hpsearch/objectives
ln -sfn "$PWD/storage" /tmp/hp/hpsearch/storage
# Keras only for Keras Tuner's HyperParameters: the numpy backend, and no process touches the GPU.
export PYTHONPATH=/tmp/site:/tmp/hp KERAS_BACKEND=numpy CUDA_VISIBLE_DEVICES= PYTHONUNBUFFERED=1
LANES=$(nproc)
python3 -c "import hpsearch, optuna, sklearn, keras_tuner, torch; print('ok', optuna.__version__, sklearn.__version__, torch.__version__)"
cd benchmarks
start=$(date +%s)
python3 replay_bench.py --all --lanes "$LANES" --out-dir "$OUT" 2>&1 | grep -v Warning | tee "$OUT/all.log"
echo "all: $(( $(date +%s) - start )) s"
GP_SECONDS=${GP_SECONDS:-200}
timeout "$GP_SECONDS" python3 replay_bench.py --surrogate --seeds "${GP_SEEDS:-32}" --seed-offset 100 --budget 420 \
  --lanes "$LANES" --methods gp,hpsearch-nobaseline,tpe-hyperband \
  --out "$OUT/mnist_mlp_budget420_surrogate_gp.json" 2>&1 | grep -v Warning | tee "$OUT/gp.log" || echo "gp: stopped at ${GP_SECONDS} s"
echo "total: $(( $(date +%s) - start )) s"
