"""Final training from an exported params file: no Optuna in the loop, one test evaluation.

Writes into ``out``: ``model.keras``, ``metrics.json`` (test accuracy and loss, per-class accuracy,
confusion matrix), ``params.json`` (the params file used), ``learning_curves.png``,
``confusion_matrix.png`` and ``misclassified.png``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
import time
from typing import Any

import numpy as np


def check_output_dir(out: str | Path) -> None:
    """``train --out``: an existing folder, or one that can be made (no file in the way)."""
    from ._errors import UsageError

    p = Path(out)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                what = "is a file" if q == p else f"lies under {q}, which is a file"
                raise UsageError(f"--out {out} {what}; choose a folder")
            break


def resolve_epochs(doc: dict[str, Any], epochs: str) -> int:
    from ._errors import UsageError
    from ._study import MAX_EPOCHS

    if epochs == "best":
        n = doc.get("best_epoch") or doc.get("max_epochs")
        if not n:
            raise UsageError("the params file has no best_epoch or max_epochs; pass --epochs N")
        return int(n)
    try:
        n = int(epochs)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--epochs must be 'best' or a positive integer, got {epochs!r}")
    if n > MAX_EPOCHS:
        raise UsageError(f"--epochs {n} is more than {MAX_EPOCHS}; give a smaller number")
    return n


def train_final(
    doc: dict[str, Any],
    task: Any,
    *,
    data_dir: str | None,
    out: Path,
    epochs: int,
    train_on: str = "train",
    seed: int = 0,
    log: Any = print,
) -> dict[str, Any]:
    from ._summary import epoch_lines
    from .objectives import ArrayData
    from .objectives._fit import batch_size_of
    from .objectives._fit import eval_batch_size
    from .objectives._fit import fit_task

    data = task.load_data(data_dir, seed=int(doc.get("data_seed", 0)), options=doc["task_options"])
    if train_on == "train+val":
        if not isinstance(data, ArrayData) and not hasattr(data, "merged"):
            from ._errors import UsageError

            raise UsageError(f"task {doc['task']!r} cannot merge train and val; use --train-on train")
        data = data.merged(("train", "val"))
    log(f"data: {data.description}")
    out.mkdir(parents=True, exist_ok=True)
    params = doc["params"]
    t0 = time.perf_counter()
    # With --train-on train+val the validation split is part of the training data: a "validation"
    # curve on it would only measure memorisation, so there is none.
    run = fit_task(
        task,
        data,
        params,
        epochs=epochs,
        seed=seed,
        validate=train_on == "train",
        callbacks=[epoch_lines("train", epochs, after=0.0, log=log)],
    )
    fit_seconds = time.perf_counter() - t0
    model = run.model
    test = data.inputs("test", eval_batch_size(batch_size_of(params), data.spec.input_shape))
    y_true = data.labels("test")
    probs = model.predict(test.x, batch_size=test.batch_size, verbose=0)
    y_pred = np.argmax(probs, axis=-1)
    loss_acc = model.evaluate(test.x, test.y, batch_size=test.batch_size, verbose=0, return_dict=True)
    n = data.spec.num_classes
    cm = np.zeros((n, n), dtype=int)
    np.add.at(cm, (y_true.astype(int), y_pred.astype(int)), 1)
    per_class = {
        name: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None) for i, name in enumerate(data.spec.class_names)
    }
    metrics = {
        "task": doc["task"],
        "test_accuracy": float((y_pred == y_true).mean()),
        "test_loss": float(loss_acc["loss"]),
        "test_size": int(len(y_true)),
        "per_class_accuracy": per_class,
        "class_names": list(data.spec.class_names),
        "confusion_matrix": cm.tolist(),
        "epochs": epochs,
        "train_on": train_on,
        "fit_seconds": round(fit_seconds, 2),
        "data": data.description,
        "history": run.history,
        "steps_per_execution": run.info.get("steps_per_execution"),
    }
    model.save(out / "model.keras")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    (out / "params.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    _plots(out, metrics, data, y_true, y_pred)
    return metrics


def _plots(out: Path, metrics: dict[str, Any], data: Any, y_true: np.ndarray, y_pred: np.ndarray) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    hist = metrics["history"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(hist.get("loss", [])) + 1)
    for ax, key in zip(axes, ("accuracy", "loss")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            if prefix + key in hist:
                ax.plot(epochs, hist[prefix + key], marker="o", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.legend()
        ax.grid(alpha=0.3)
    on = "" if metrics.get("train_on", "train") == "train" else f"; trained on {metrics['train_on']}, no validation"
    fig.suptitle(f"{metrics['task']}: learning curves (test accuracy {metrics['test_accuracy']:.4f}{on})")
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)

    cm = np.array(metrics["confusion_matrix"])
    names = metrics["class_names"]
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
                fontsize=8,
            )
    ax.set_title(f"confusion matrix ({cm.sum()} test images)")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=100)
    plt.close(fig)

    wrong = np.flatnonzero(y_true != y_pred)[:25]
    cols = 5
    rows = max(1, math.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.6 * rows + 0.6), squeeze=False)
    images = data.images("test", wrong) if len(wrong) else np.zeros((0,))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(wrong):
            continue
        img = np.asarray(images[k], dtype="float32")
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        if img.max() > 1.0:
            img = img / 255.0
        ax.imshow(
            np.clip(img, 0, 1), cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest"
        )
        ax.set_title(f"true {names[y_true[wrong[k]]]}\npred {names[y_pred[wrong[k]]]}", fontsize=8)
    if not len(wrong):
        axes.flat[0].text(0.5, 0.5, "no misclassified test images", ha="center")
    fig.suptitle(f"misclassified: {int((y_true != y_pred).sum())} of {len(y_true)} (first {len(wrong)})")
    fig.tight_layout()
    fig.savefig(out / "misclassified.png", dpi=100)
    plt.close(fig)
