"""Seconds per training epoch and peak memory of every task's first baseline, on this machine.

    python benchmarks/task_figures.py [--tasks mnist_cnn,cifar10_cnn] [--max-seconds 30] [--markdown]

Each task runs in a fresh subprocess (so ``ru_maxrss`` is that task's own peak resident memory,
data and TensorFlow included). The baseline model is built at the task's real input size with
``weights=none`` (no downloads; a frozen backbone costs the same with ImageNet weights). One
batch is run first (graph tracing, not timed); then training batches are timed until
``--max-batches`` batches or ``--max-seconds`` seconds (at least 2 batches), and seconds per
epoch are extrapolated to the task's training-set size: ``seconds per batch x ceil(train images /
batch size)``. Validation passes are not included.

Data: MNIST and CIFAR-10 from ``shared/datasets`` (the t10k split's 8,000 training images; the
``data_batch_1`` subset's 9,000), cats vs dogs from ``shared/datasets/cats-and-dogs-small`` (600),
image_folder on the same folders (MobileNetV2, 224x224). CelebA is not stored there: a folder of
256 random-pixel JPEGs (178x218, CelebA's size) in CelebA's layout is generated, and the epoch is
extrapolated to the notebook's 24,000 training images; its peak memory therefore leaves out the
decoded-image cache of the real 30,000 images (30,000 x 224 x 224 x 3 bytes = 4.2 GiB).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
TASKS = ("mnist_mlp", "mnist_cnn", "cifar10_cnn", "cats_vs_dogs", "celeba_gender", "image_folder", "digits")
CELEBA_TRAIN = 24_000  # the notebook's training images (first 30,000, 80%)


def _celeba_folder(root: Path, n: int = 256) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(root / "img_align_celeba" / name)
    rows = [str(n), "Male Young"] + [f"{f} {rng.choice(['-1', ' 1'])}  1" for f in names]
    (root / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
    return root


def measure(task_name: str, max_batches: int, max_seconds: float) -> dict[str, Any]:
    """Runs in the child process."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import keras

    from hpsearch.objectives import get_task
    from hpsearch.objectives import task_options

    task = get_task(task_name)
    given = {"weights": "none"} if "weights" in (getattr(task, "options", None) or {}) else {}
    options = task_options(task, given)
    data_dir: str | None = {
        "mnist_mlp": DATASETS / "mnist-t10k",
        "mnist_cnn": DATASETS / "mnist-t10k",
        "cifar10_cnn": DATASETS / "cifar10-subset",
        "cats_vs_dogs": DATASETS / "cats-and-dogs-small",
        "image_folder": DATASETS / "cats-and-dogs-small",
    }.get(task_name)  # type: ignore[assignment]
    tmp = None
    if task_name == "celeba_gender":
        tmp = tempfile.TemporaryDirectory()
        data_dir = _celeba_folder(Path(tmp.name))
    if data_dir is not None:
        data_dir = str(data_dir)
        if not Path(data_dir).exists():
            return {"task": task_name, "error": f"{data_dir} absent"}
    t0 = time.perf_counter()
    data = task.load_data(data_dir, seed=0, options=options)
    load_s = time.perf_counter() - t0
    params = task.baselines[0]
    bs = int(params["batch_size"])
    n_train = CELEBA_TRAIN if task_name == "celeba_gender" else data.sizes["train"]
    steps_per_epoch = math.ceil(n_train / bs)
    keras.utils.set_random_seed(0)
    model = task.build_model(params, data.spec)
    train = data.inputs("train", bs, shuffle=True, seed=0)

    def batches() -> Any:
        if train.y is None:  # a tf.data pipeline of (x, y) batches
            while True:
                yield from train.x
        else:
            n = len(train.y)
            while True:
                for i in range(0, n - bs + 1, bs):
                    yield train.x[i : i + bs], train.y[i : i + bs]

    it = batches()
    x, y = next(it)
    t0 = time.perf_counter()
    model.train_on_batch(x, y)  # traces the graph
    warmup_s = time.perf_counter() - t0
    timed, t0 = 0, time.perf_counter()
    while timed < max_batches and (timed < 2 or time.perf_counter() - t0 < max_seconds):
        x, y = next(it)
        model.train_on_batch(x, y)
        timed += 1
    per_batch = (time.perf_counter() - t0) / timed
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    if tmp is not None:
        tmp.cleanup()
    return {
        "task": task_name,
        "input": "x".join(str(d) for d in data.spec.input_shape),
        "params": model.count_params(),
        "batch_size": bs,
        "train_images": n_train,
        "timed_batches": timed,
        "seconds_per_batch": round(per_batch, 4),
        "seconds_per_epoch": round(per_batch * steps_per_epoch, 1),
        "extrapolated": timed < steps_per_epoch,
        "first_batch_s": round(warmup_s, 1),
        "load_s": round(load_s, 1),
        "peak_rss_mib": round(peak_mib),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--max-batches", type=int, default=30)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child mode: measure one task, print JSON
    args = ap.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args.max_batches, args.max_seconds)), flush=True)
        return 0
    rows = []
    for name in args.tasks.split(","):
        cmd = [
            sys.executable,
            __file__,
            "--one",
            name,
            "--max-batches",
            str(args.max_batches),
            "--max-seconds",
            str(args.max_seconds),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        row = json.loads(line[7:]) if line else {"task": name, "error": (out.stderr.strip().splitlines() or ["?"])[-1]}
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    cols = (
        "task",
        "input",
        "batch_size",
        "train_images",
        "timed_batches",
        "seconds_per_batch",
        "seconds_per_epoch",
        "extrapolated",
        "first_batch_s",
        "peak_rss_mib",
    )
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(str(r.get(c, r.get("error", "-"))) for c in cols) + " |")
    else:
        print("  ".join(f"{c:>17}" for c in cols))
        for r in rows:
            print("  ".join(f"{str(r.get(c, r.get('error', '-'))):>17}" for c in cols))
    print(
        f"\n{os.cpu_count()} CPU core(s); seconds per epoch = seconds per batch x batches per epoch "
        "(timed batches < batches per epoch: extrapolated); training only, no validation pass."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
