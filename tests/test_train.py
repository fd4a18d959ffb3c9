"""``hpsearch train``: the final training writes its outputs; bad params files are refused (exit 2)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS_TEST_SIZE = 270
OUTPUTS = (
    "model.keras",
    "metrics.json",
    "params.json",
    "learning_curves.png",
    "confusion_matrix.png",
    "misclassified.png",
)

GOOD: dict[str, Any] = {
    "format": "hpsearch-params",
    "version": 1,
    "task": "digits",
    "params": {
        "n_layers": 1,
        "units_0": 64,
        "activation": "relu",
        "dropout": 0.1,
        "optimizer": "adam",
        "learning_rate": 0.01,
        "batch_size": 32,
    },
    "task_options": {},
    "best_epoch": 3,
    "max_epochs": 5,
    "data_seed": 0,
    "study": "demo",
    "trial": 0,
    "value": 0.95,
    "storage": "sqlite:///hpsearch.db",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return env


def test_train_writes_its_outputs(tmp_path: Path) -> None:
    params = tmp_path / "best.json"
    params.write_text(json.dumps(GOOD))
    out = tmp_path / "final"
    r = subprocess.run(
        [sys.executable, "-m", "hpsearch", "train", "--params", str(params), "--out", str(out)],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"on {DIGITS_TEST_SIZE} images after 3 epoch(s)" in r.stdout  # --epochs best = best_epoch
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 100, name

    m = json.loads((out / "metrics.json").read_text())
    cm = m["confusion_matrix"]
    assert len(cm) == len(m["class_names"]) == 10 and all(len(row) == 10 for row in cm)
    assert sum(map(sum, cm)) == m["test_size"] == DIGITS_TEST_SIZE
    assert sum(cm[i][i] for i in range(10)) / DIGITS_TEST_SIZE == pytest.approx(m["test_accuracy"])
    assert m["test_accuracy"] > 0.8 and m["epochs"] == 3 and m["train_on"] == "train"
    assert {k: len(v) for k, v in m["history"].items()} == {"accuracy": 3, "loss": 3, "val_accuracy": 3, "val_loss": 3}
    for name, acc in m["per_class_accuracy"].items():
        i = m["class_names"].index(name)
        assert acc == pytest.approx(cm[i][i] / sum(cm[i]))
    assert json.loads((out / "params.json").read_text())["params"] == GOOD["params"]

    from PIL import Image

    for name in OUTPUTS[3:]:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width >= 400 and im.height >= 300, name

    # the saved model reloads and gives the reported test accuracy
    check = (
        "import json, sys, keras; from hpsearch.objectives.digits import load_data; "
        "m = keras.models.load_model(sys.argv[1] + '/model.keras'); d = load_data(seed=0); "
        "p = m.predict(d.inputs('test', 64).x, verbose=0).argmax(-1); print((p == d.labels('test')).mean())"
    )
    r = subprocess.run([sys.executable, "-c", check, str(out)], env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert float(r.stdout.strip().splitlines()[-1]) == pytest.approx(m["test_accuracy"])


@pytest.mark.parametrize(
    ("case", "change", "message"),
    [
        ("unknown task", {"task": "nope"}, "unknown task 'nope'"),
        ("task not a string", {"task": 5}, "missing or invalid 'task'"),
        ("no params", {"params": None}, "missing or invalid 'params'"),
        ("params not a mapping", {"params": [1, 2]}, "missing or invalid 'params'"),
        (
            "missing param",
            {"params": {k: v for k, v in GOOD["params"].items() if k != "learning_rate"}},
            "learning_rate",
        ),
        ("param of the wrong type", {"params": {**GOOD["params"], "batch_size": "32"}}, "batch_size='32'"),
        ("float for an int", {"params": {**GOOD["params"], "n_layers": 1.0}}, "n_layers=1.0"),
        ("bool for an int", {"params": {**GOOD["params"], "batch_size": True}}, "batch_size=True"),
        ("value out of range", {"params": {**GOOD["params"], "learning_rate": 5.0}}, "learning_rate=5.0"),
        ("unknown choice", {"params": {**GOOD["params"], "activation": "gelu"}}, "gelu"),
        ("unknown param", {"params": {**GOOD["params"], "momentum": 0.9}}, "momentum"),
        ("not a params file", {"format": "other"}, "not an hpsearch params file"),
        ("newer version", {"version": 2}, "upgrade hpsearch"),
        ("version not an int", {"version": "1"}, "'version' must be a positive integer"),
        ("best_epoch a string", {"best_epoch": "3"}, "'best_epoch' must be a positive integer"),
        ("best_epoch a bool", {"best_epoch": True}, "'best_epoch' must be a positive integer"),
        ("max_epochs zero", {"max_epochs": 0}, "'max_epochs' must be a positive integer"),
        ("data_seed a string", {"data_seed": "x"}, "'data_seed' must be a non-negative integer"),
        ("task_options a list", {"task_options": ["weights"]}, "'task_options' must be a mapping"),
        ("unknown task option", {"task_options": {"weights": "none"}}, "has no option weights"),
    ],
)
def test_train_rejects_a_bad_params_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, change: dict[str, Any], message: str
) -> None:
    from hpsearch.cli import main

    doc = copy.deepcopy(GOOD)
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    params = tmp_path / "bad.json"
    params.write_text(json.dumps(doc))
    out = tmp_path / "final"
    rc = main(["train", "--params", str(params), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2, case
    assert len(err.strip().splitlines()) == 1 and err.startswith("hpsearch train: error: "), err
    assert message in err, err
    assert str(params) in err  # names the file
    assert not out.exists()  # nothing written


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "{", "is not valid JSON"),
        ("bad.yaml", "format: [", "is not valid YAML"),
        ("list.json", "[1, 2]", "not an hpsearch params file"),
        ("missing.json", None, "not found"),
    ],
)
def test_train_rejects_an_unreadable_params_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str | None, message: str
) -> None:
    from hpsearch.cli import main

    path = tmp_path / name
    if text is not None:
        path.write_text(text)
    rc = main(["train", "--params", str(path), "--out", str(tmp_path / "final")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_train_reads_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A YAML params file is read like JSON (checked up to the data loading: no training here)."""
    import yaml

    from hpsearch._export import load_params_file

    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    doc, task = load_params_file(str(path))
    assert doc["params"] == GOOD["params"] and task.name == "digits"
