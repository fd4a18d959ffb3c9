"""What a user reads (issue 15, items 2, 5, 9): split folders, end-of-run summary, per-epoch lines,
short numbers, the feature cache in trial lines and ``status``, and the messages of the data loaders.

Image folders are generated in ``tmp_path`` (tiny real PNGs: cats bright, dogs dark); backbones
run with ``weights=none`` at 32 px; the CLI runs use the ``digits`` task.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
import re
import struct
from typing import Any

from conftest import MNIST_T10K
from conftest import cli_env
from conftest import hpsearch
from conftest import need
import numpy as np
import pytest

from hpsearch.objectives import TaskError
from hpsearch.objectives import get_task

SMALL = {"weights": "none", "image_size": 32}


def make_images(folder: Path, n: int, *, dark: bool, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        lo, hi = (0, 90) if dark else (160, 255)
        Image.fromarray(rng.integers(lo, hi, (20, 24, 3), dtype=np.uint8)).save(folder / f"img{i:03d}.png")


def make_split_folders(root: Path, train: str = "training_set", test: str = "test_set", n: int = 8) -> Path:
    """Kaggle's layout: ``training_set/{cats,dogs}`` + ``test_set/{cats,dogs}``."""
    for split, count in ((train, n), (test, 3)):
        if not split:
            continue
        make_images(root / split / "cats", count, dark=False, seed=1)
        make_images(root / split / "dogs", count, dark=True, seed=2)
    return root


def run_trial(task: Any, data: Any, params: dict[str, Any], epochs: int = 1) -> float:
    import optuna

    from hpsearch._objective import TrialRunner

    return TrialRunner(task, data, max_epochs=epochs, seed=0)(optuna.trial.FixedTrial(params))


def warnings_of(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.name == "hpsearch" and r.levelno >= logging.WARNING)


# -- item 2: split folders --------------------------------------------------------------------
def test_training_set_and_test_set_are_splits_and_the_task_trains_on_cats_and_dogs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_split_folders(tmp_path / "kaggle")
    task = get_task("image_folder")
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        data = task.load_data(str(root), seed=0, options=SMALL)
    assert data.spec.class_names == ("cats", "dogs") and data.spec.num_classes == 2
    # 16 training images: 2 (10%) carved for validation; test_set/ is the test set
    assert data.sizes == {"train": 14, "val": 2, "test": 6}
    assert sorted(np.bincount(data.labels("test"))) == [3, 3]
    assert "training_set/" in data.description and "test_set/" in data.description
    assert "2 classes (cats, dogs)" in data.description  # the class names found are printed
    assert warnings_of(caplog) == ""
    value = run_trial(task, data, {**task.baselines[0], "augment": False})
    assert 0.0 <= value <= 1.0
    # cats_vs_dogs reads the same layout, and Kaggle's doubled training_set/training_set/
    doubled = tmp_path / "doubled"
    for split in ("training_set", "test_set"):
        make_split_folders(doubled / split, train=split, test="", n=3 if split == "test_set" else 8)
    cats = get_task("cats_vs_dogs").load_data(str(doubled), seed=0, options=SMALL)
    assert cats.spec.class_names == ("cats", "dogs") and cats.sizes["test"] == 6


def test_split_folder_names_are_case_insensitive(tmp_path: Path) -> None:
    root = make_split_folders(tmp_path / "d", train="Train", test="TEST")
    make_images(root / "Valid" / "cats", 2, dark=False)
    make_images(root / "Valid" / "dogs", 2, dark=True)
    data = get_task("image_folder").load_data(str(root), seed=0, options=SMALL)
    assert data.spec.class_names == ("cats", "dogs")
    assert data.sizes == {"train": 16, "val": 4, "test": 6}
    assert "Valid/" in data.description


def test_split_like_layouts_stop_or_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    task = get_task("image_folder")
    no_train = make_split_folders(tmp_path / "no_train", train="validation")
    with pytest.raises(TaskError, match=r"no training folder; put the training images in train/"):
        task.load_data(str(no_train), options=SMALL)
    with pytest.raises(TaskError, match=r"no train/ folder \(nor training_set/\)"):
        get_task("cats_vs_dogs").load_data(str(no_train), options=SMALL)
    two_val = make_split_folders(tmp_path / "two_val", train="train", test="val")
    make_split_folders(two_val, train="", test="validation")
    with pytest.raises(TaskError, match="two val folders"):
        task.load_data(str(two_val), options=SMALL)
    # unknown names that each hold the same class folders: they look like splits
    odd = make_split_folders(tmp_path / "odd", train="part_a", test="part_b")
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        data = task.load_data(str(odd), options=SMALL)
    assert data.spec.class_names == ("part_a", "part_b")
    assert re.search(r"look like splits, not classes.*rename them train/ and test/", warnings_of(caplog))
    caplog.clear()
    # class folders beside split folders are ignored, loudly
    extra = make_split_folders(tmp_path / "extra", train="train", test="")
    make_images(extra / "birds", 2, dark=False)
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        data = task.load_data(str(extra), options=SMALL)
    assert data.spec.class_names == ("cats", "dogs")
    assert "ignoring birds/" in warnings_of(caplog)


# -- item 5: feedback -------------------------------------------------------------------------
def test_run_ends_with_the_summary_and_long_trials_print_epoch_lines(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    run = hpsearch(
        *("run", "--task", "digits", "--study", "demo", "--n-trials", "2", "--max-epochs", "2", "--storage", url),
        # no pruning: ASHA may stop trial 1 after its first epoch, and this test counts epoch lines;
        # no live recheck: trial 1 would be trial 0 again (test_recheck.py covers that summary)
        *("--pruner", "none", "--no-live-recheck"),
        cwd=tmp_path,
        env=cli_env(HPSEARCH_EPOCH_LINES_AFTER="0"),  # every trial counts as long
    )
    lines = run.stdout.splitlines()
    epochs = [
        ln for ln in lines if re.fullmatch(r"trial \d epoch [12]/2 loss=\S+ val_accuracy=0\.\d{1,4} seconds=\S+", ln)
    ]
    assert len(epochs) == 4, run.stdout
    tail = lines[-6:]
    assert re.fullmatch(r"done in \d+\.\d s: 2 trial\(s\) run here, study 'demo' has COMPLETE 2", tail[0]), tail
    assert re.fullmatch(r"best: trial \d value=0\.\d{1,4} best_epoch=\d params=\{.*\}", tail[1]), tail
    assert tail[2] == f"next: hpsearch export --study demo --storage {url} -o best.json"
    assert tail[3] == f"      hpsearch report --study demo --storage {url} -o report.html"
    assert tail[4] == f"      hpsearch dashboard --storage {url}"
    assert tail[5].startswith(f"      hpsearch recheck --study demo --storage {url}   (before export: the 5 best")
    # no 16-digit floats anywhere: params and values have 4 significant digits
    trial_lines = [ln for ln in lines if ln.startswith("trial ") and " COMPLETE " in ln]
    assert len(trial_lines) == 2
    numbers = re.findall(r"(?<![\w/.])(\d+\.\d+)(?:e-?\d+)?", "\n".join(trial_lines + tail))
    assert numbers and all(len(n.replace(".", "").lstrip("0")) <= 4 for n in numbers), numbers


def test_epoch_lines_start_after_the_threshold() -> None:
    import keras

    from hpsearch._summary import epoch_lines

    x = np.zeros((8, 2), dtype="float32")
    y = np.zeros(8, dtype="int64")

    def fit(after: float, slow: float = 0.0) -> list[str]:
        out: list[str] = []

        class Sleep(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                import time

                time.sleep(slow if epoch == 0 else 0.0)

        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
        cb = epoch_lines("trial 3", 4, after=after, log=out.append)
        model.fit(x, y, epochs=4, validation_data=(x, y), verbose=0, callbacks=[Sleep(), cb])
        return out

    assert fit(after=1000.0) == []  # short trials stay one line
    lines = fit(after=0.0)
    assert [ln.split(" seconds=")[0].split(" loss=")[0] for ln in lines] == [
        f"trial 3 epoch {k}/4" for k in (1, 2, 3, 4)
    ]
    assert all(re.search(r"loss=\S+ val_accuracy=\S+ seconds=\d+\.\d$", ln) for ln in lines)
    # a first epoch of 0.3 s x 4 epochs predicts 1.2 s > 1 s: lines from the first epoch on
    assert len(fit(after=1.0, slow=0.3)) == 4


def test_train_prints_a_line_per_epoch(tmp_path: Path) -> None:
    from hpsearch._train import train_final

    task = get_task("digits")
    doc = {"task": "digits", "params": task.baselines[0], "task_options": {}, "data_seed": 0}
    log: list[str] = []
    train_final(doc, task, data_dir=None, out=tmp_path / "final", epochs=2, log=log.append)
    epochs = [ln for ln in log if ln.startswith("train epoch")]
    assert len(epochs) == 2 and epochs[1].startswith("train epoch 2/2 loss=")
    assert all(re.search(r"val_accuracy=0\.\d{1,4} seconds=\d+\.\d$", ln) for ln in epochs)


def test_numbers_have_4_significant_digits_and_the_cache_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import optuna

    from hpsearch._summary import fmt
    from hpsearch._summary import format_params
    from hpsearch._worker import trial_line
    from hpsearch.cli import main

    assert fmt(0.912345678) == "0.9123" and fmt(0.000123456) == "0.0001235" and fmt(32) == "32" and fmt(True) == "True"
    assert (
        format_params({"lr": 0.0012345678901234, "bs": 32, "opt": "adam"})
        == '{"bs": 32, "lr": 0.001235, "opt": "adam"}'
    )
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="c", storage=url, direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)}
    for cached, value in ((True, 0.912345678), (False, 0.5)):
        attrs = {"seconds": 2.25, "epochs_run": 3, "best_epoch": 2, **({"feature_cache": True} if cached else {})}
        study.add_trial(
            optuna.trial.create_trial(params={"lr": 0.00123456789}, distributions=dist, value=value, user_attrs=attrs)
        )
    line = trial_line(study.trials[0])
    assert line == 'trial 0 COMPLETE value=0.9123 epochs=3 seconds=2.2 cache=yes params={"lr": 0.001235}'
    assert "cache" not in trial_line(study.trials[1])
    assert main(["status", "--study", "c", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert 'best: trial 0 value 0.9123 best_epoch 2 cache yes params {"lr": 0.001235}' in out
    rows = [ln.split() for ln in out.splitlines() if re.match(r"\s+\d+ COMPLETE", ln)]
    assert [r[5] for r in rows] == ["yes", "-"] and rows[0][2] == "0.9123"
    assert "cache" in out.splitlines()[3]


# -- item 9: messages -------------------------------------------------------------------------
def test_brief_cuts_between_words() -> None:
    from hpsearch.objectives._base import brief

    text = "URL fetch failure on https://example.org/" + "x" * 80 + ".h5: None -- [Errno 111] Connection refused " * 5
    short = brief(text, 100)
    assert len(short) <= 100 and short.endswith(" ...")
    assert all(word in text.split() for word in short.split()[:-1])  # whole words only


def test_offline_imagenet_error_names_the_file_for_the_image_size(tmp_path: Path) -> None:
    root = make_split_folders(tmp_path / "kaggle", n=2)
    env = cli_env(
        KERAS_HOME=str(tmp_path / "keras-home"),  # no cached weights
        HTTPS_PROXY="http://127.0.0.1:9",  # offline: nothing listens there
        HTTP_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        NO_PROXY="",
        no_proxy="",
    )
    proc = hpsearch(
        *("run", "--task", "cats_vs_dogs", "--data-dir", str(root), "--n-trials", "1"),
        cwd=tmp_path,
        env=env,
        check=False,
    )
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("hpsearch run: error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    msg = errors[0]
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160_no_top.h5" in msg  # the 160 px file
    assert "_224_" not in msg and "--weights none" in msg
    inside = msg.split("cannot download ImageNet weights for MobileNetV2 (")[1].split("); without network")[0]
    for word in inside.split():  # a URL is whole or absent, never cut
        if "://" in word:
            assert re.search(r"\.h5:?$", word), msg
    assert not (tmp_path / "hpsearch.db").exists()  # nothing written


def test_a_bad_weights_path_is_checked_before_images_are_decoded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_split_folders(tmp_path / "kaggle", n=2)
    (root / "training_set" / "cats" / "broken.jpg").write_bytes(os.urandom(512))
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        with pytest.raises(TaskError, match=r"weights file .*missing\.h5 not found"):
            get_task("image_folder").load_data(str(root), options={**SMALL, "weights": str(tmp_path / "missing.h5")})
    assert "corrupt" not in warnings_of(caplog)  # no image was decoded


def test_the_data_line_counts_images_after_corrupt_ones_are_skipped(tmp_path: Path) -> None:
    root = make_split_folders(tmp_path / "kaggle", n=10)
    for i in range(2):
        (root / "test_set" / "dogs" / f"broken{i}.png").write_bytes(os.urandom(300))
    data = get_task("image_folder").load_data(str(root), seed=0, options=SMALL)
    assert data.skipped == 2 and data.sizes["test"] == 6
    assert "/ 6 test (test_set/)" in data.description and "2 unreadable image(s) skipped" in data.description


def write_celeba(root: Path, listed: int, present: int, partition: bool = False) -> Path:
    """An attribute file listing ``listed`` images, of which the first ``present`` exist."""
    from PIL import Image

    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = [str(listed), "Smiling Male Young"]
    for i in range(listed):
        male = int(rng.integers(0, 2))
        rows.append(f"{i + 1:06d}.jpg 1 {1 if male else -1} -1")
        if i < present:
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(images / f"{i + 1:06d}.jpg")
    (root / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
    if partition:
        parts = [0] * (listed * 8 // 10) + [1] * (listed // 10)
        parts += [2] * (listed - len(parts))
        (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {p}\n" for i, p in enumerate(parts)))
    return root


def test_celeba_with_only_some_images_says_to_lower_max_images(tmp_path: Path) -> None:
    task = get_task("celeba_gender")
    root = write_celeba(tmp_path / "celeba", listed=200, present=40)
    with pytest.raises(TaskError) as e:
        task.load_data(str(root), options=SMALL)
    msg = str(e.value)
    assert "only 40 of the 200 images" in msg and "lower --option max_images to at most 40" in msg
    assert "raise" not in msg
    data = task.load_data(str(root), options={**SMALL, "max_images": "40"})  # the fix works
    assert data.sizes == {"train": 32, "val": 4, "test": 4}
    parted = write_celeba(tmp_path / "parted", listed=200, present=40, partition=True)
    with pytest.raises(TaskError, match=r"move list_eval_partition\.txt away .*lower --option max_images"):
        task.load_data(str(parted), options=SMALL)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_array_tasks_take_class_names_from_the_option_or_classes_txt(tmp_path: Path) -> None:
    digits = get_task("digits")
    words = "zero,one,two,three,four,five,six,seven,eight,nine"
    data = digits.load_data(None, options={"class_names": words})
    assert data.spec.class_names == tuple(words.split(",")) and "classes zero, one" in data.description
    with pytest.raises(TaskError, match=r"names 3 class\(es\) but the labels have 10"):
        digits.load_data(None, options={"class_names": "a,b,c"})
    # IDX files of another alphabet: 26 labels, named by classes.txt beside them
    d = tmp_path / "letters"
    d.mkdir()
    (d / "t10k-images-idx3-ubyte.gz").symlink_to(need(MNIST_T10K) / "t10k-images-idx3-ubyte.gz")
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(10_000) % 26)
    mlp = get_task("mnist_mlp")
    unnamed = mlp.load_data(str(d))
    assert unnamed.spec.num_classes == 26 and unnamed.spec.class_names[25] == "25"
    assert unnamed.description.startswith("MNIST-format") and "26 classes" in unnamed.description
    letters = [chr(ord("A") + i) for i in range(26)]
    (d / "classes.txt").write_text("\n".join(letters) + "\n")
    named = mlp.load_data(str(d))
    assert named.spec.class_names == tuple(letters) and "classes.txt" in named.description
    assert (
        mlp.load_data(str(d), options={"class_names": ",".join(x.lower() for x in letters)}).spec.class_names[0] == "a"
    )


def test_create_names_the_metric_for_the_dashboard(tmp_path: Path) -> None:
    import optuna

    from hpsearch.cli import main

    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["create", "--task", "digits", "--study", "m", "--storage", url]) == 0
    assert optuna.load_study(study_name="m", storage=url).metric_names == ["val_accuracy"]
    assert json.loads(json.dumps(optuna.load_study(study_name="m", storage=url).user_attrs))["task"] == "digits"
