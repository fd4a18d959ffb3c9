"""Every task's contract on real data (offline, seeded): data, baselines, models, bad files, plug-ins.

Real data sets come from ``shared/datasets`` beside the repository (see its README); a test
that needs one is skipped, saying which, when it is absent. CelebA's layout is generated in
``tmp_path`` (real JPEGs, the official list formats). Backbone tasks run with ``weights=none``
at ``image_size=32``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
import shutil
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from hpsearch.objectives import ArrayData
from hpsearch.objectives import TaskError
from hpsearch.objectives import get_task
from hpsearch.objectives import task_options
from hpsearch.objectives import validate_params

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
MNIST = DATASETS / "mnist-t10k"
CIFAR = DATASETS / "cifar10-subset"
CATS = DATASETS / "cats-and-dogs-small"
HPSEARCH = [sys.executable, "-m", "hpsearch"]

ALL_TASKS = ("mnist_mlp", "mnist_cnn", "cifar10_cnn", "cats_vs_dogs", "celeba_gender", "image_folder", "digits")
SMALL = {"weights": "none", "image_size": 32}


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data set {path} is absent (see shared/datasets/README.md)")
    return path


def run_trial(task: Any, data: Any, params: dict[str, Any], epochs: int = 1) -> float:
    """One trial exactly as a worker runs it (search._objective.TrialRunner), on fixed params."""
    import optuna

    from hpsearch._objective import TrialRunner

    trial = optuna.trial.FixedTrial(params)
    value = TrialRunner(task, data, max_epochs=epochs, seed=0)(trial)
    assert 0.0 <= value <= 1.0
    assert trial.user_attrs["epochs_run"] == epochs
    return value


def array_slice(data: ArrayData, n: int) -> ArrayData:
    idx = {s: np.arange(min(n, data.sizes[s])) for s in ("train", "val", "test")}
    return ArrayData(
        **{f"x_{s}": data.images(s, idx[s]) for s in idx},
        **{f"y_{s}": data.labels(s)[idx[s]] for s in idx},
        class_names=data.spec.class_names,
        description=data.description,
        options=data.spec.options,
    )


# -- registry, options, baselines -------------------------------------------------------------
def test_hpsearch_tasks_lists_every_task_without_tensorflow() -> None:
    out = subprocess.run(HPSEARCH + ["tasks"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    listed = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
    assert set(ALL_TASKS) <= set(listed)
    probe = "import sys, hpsearch.objectives as o; o.list_tasks(); print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.split() == ["False", "False"]


EXPECTED_BASELINES: dict[str, list[dict[str, Any]]] = {
    "mnist_cnn": [
        {
            "n_blocks": 2,
            "filters_0": 32,
            "filters_1": 64,
            "kernel_size": 3,
            "dropout": 0.5,
            "dense_units": 0,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "batch_size": 128,
        },
    ],
    "cifar10_cnn": [
        {
            "n_blocks": 4,
            "base_filters": 32,
            "filters_cap": 128,
            "batch_norm": True,
            "padding": "same",
            "pool_last": True,
            "dropout": 0.2,
            "n_dense": 2,
            "dense_units": 128,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "batch_size": 32,
            "augment": False,
        },
        {
            "n_blocks": 3,
            "base_filters": 32,
            "filters_cap": 64,
            "batch_norm": False,
            "padding": "valid",
            "pool_last": False,
            "dropout": 0.0,
            "n_dense": 1,
            "dense_units": 64,
            "optimizer": "adam",
            "learning_rate": 1e-3,
            "batch_size": 32,
            "augment": False,
        },
    ],
    "cats_vs_dogs": [
        {
            "augment": True,
            "flip": "horizontal",
            "rotation": 0.2,
            "pooling": "flatten",
            "dense_units": 64,
            "dropout": 0.0,
            "learning_rate": 1e-3,
            "batch_size": 32,
            "fine_tune": False,
        },
    ],
    "celeba_gender": [
        {
            "learning_rate": 1e-4,
            "batch_size": 64,
            "optimizer": "adam",
            "pooling": "flatten",
            "dense_units": 0,
            "dropout": 0.0,
        },
    ],
    "image_folder": [
        {
            "augment": True,
            "flip": "horizontal",
            "rotation": 0.1,
            "pooling": "avg",
            "dense_units": 0,
            "dropout": 0.2,
            "learning_rate": 1e-3,
            "batch_size": 32,
            "fine_tune": False,
        },
    ],
}


@pytest.mark.parametrize("name", ALL_TASKS)
def test_baselines_lie_in_the_search_space(name: str) -> None:
    task = get_task(name)
    assert task.name == name and task.description
    assert task.baselines, f"{name} has no baseline"
    for params in task.baselines:
        assert validate_params(task, params) == params
    if name in EXPECTED_BASELINES:
        assert task.baselines == EXPECTED_BASELINES[name]


def test_model_shapes_of_the_notebooks() -> None:
    """The baselines build the notebooks' exact layer stacks (filters, padding, flatten sizes)."""
    from hpsearch.objectives._base import DataSpec

    mnist, cifar = get_task("mnist_cnn"), get_task("cifar10_cnn")
    m = mnist.build_model(mnist.baselines[0], DataSpec((28, 28, 1), 10, tuple("0123456789")))
    convs = [layer for layer in m.layers if layer.__class__.__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [32, 64]
    assert [layer.output.shape[1] for layer in m.layers if layer.name.startswith("flatten")] == [1600]  # 5x5x64
    spec = DataSpec((32, 32, 3), 10, tuple("abcdefghij"))
    a, b = (cifar.build_model(p, spec) for p in cifar.baselines)
    assert [c.filters for c in a.layers if c.__class__.__name__ == "Conv2D"] == [32, 64, 128, 128]
    assert sum(c.__class__.__name__ == "BatchNormalization" for c in a.layers) == 4
    assert [d.units for d in a.layers if d.__class__.__name__ == "Dense"] == [128, 128, 10]
    assert [c.filters for c in b.layers if c.__class__.__name__ == "Conv2D"] == [32, 64, 64]
    assert [layer.output.shape[1] for layer in b.layers if layer.name.startswith("flatten")] == [1024]  # 4x4x64
    assert [d.units for d in b.layers if d.__class__.__name__ == "Dense"] == [64, 10]


@pytest.mark.parametrize("name", ["mnist_cnn", "cifar10_cnn"])
def test_sampled_conv_params_always_build(name: str) -> None:
    """Random points of the space (3 blocks of 5x5 on MNIST, 4 valid blocks on CIFAR) build a model."""
    import optuna

    from hpsearch.objectives._base import DataSpec

    task = get_task(name)
    shape = (28, 28, 1) if name == "mnist_cnn" else (32, 32, 3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    corner = {"n_blocks": 3, "kernel_size": 5} if name == "mnist_cnn" else {"n_blocks": 4, "padding": "valid"}
    study.enqueue_trial(corner)  # the smallest feature maps
    for _ in range(8):
        trial = study.ask()
        model = task.build_model(task.search_space(trial), DataSpec(shape, 10, tuple("abcdefghij")))
        assert model.output_shape == (None, 10)
        study.tell(trial, 0.0)


def test_task_options_are_parsed_and_checked() -> None:
    cats, folder, celeba = get_task("cats_vs_dogs"), get_task("image_folder"), get_task("celeba_gender")
    assert task_options(cats, {}) == {"weights": "imagenet", "image_size": 160, "feature_cache": "on"}
    assert task_options(cats, {"weights": "none", "image_size": "64"}) == {
        "weights": "none",
        "image_size": 64,
        "feature_cache": "on",
    }
    assert task_options(celeba, {})["image_size"] == 224 and task_options(celeba, {})["max_images"] == 30_000
    assert task_options(folder, {"backbone": "VGG16"})["backbone"] == "VGG16"
    with pytest.raises(TaskError, match="image_size"):
        task_options(cats, {"image_size": "16"})
    with pytest.raises(TaskError, match="choose one of"):
        task_options(folder, {"backbone": "AlexNet"})
    with pytest.raises(TaskError, match="no option"):
        task_options(get_task("mnist_cnn"), {"weights": "none"})


# -- learning -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "n", "epochs", "floor"),
    [("digits", None, 3, 0.85), ("mnist_mlp", 2048, 3, 0.75), ("mnist_cnn", 1024, 2, 0.5)],
)
def test_baselines_learn_where_learning_is_possible(name: str, n: int | None, epochs: int, floor: float) -> None:
    """Ten classes (chance 0.1): a few epochs of the baseline must land far above chance, so a
    model or data pipeline that learns nothing (shuffled labels, a broken input scale) fails here."""
    task = get_task(name)
    data = task.load_data(None if name == "digits" else str(need(MNIST)), seed=0)
    if n is not None:
        data = array_slice(data, n)
    value = run_trial(task, data, task.baselines[0], epochs=epochs)
    assert value >= floor, f"{name}: best validation accuracy {value:.3f} after {epochs} epochs (chance 0.1)"


# -- weights ----------------------------------------------------------------------------------
def test_imagenet_weights_offline_names_both_ways_out(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.utils import file_utils

    from hpsearch.objectives import _backbones

    def offline(fname: str, origin: str, *args: Any, **kwargs: Any) -> str:
        # what keras.utils.get_file raises without network
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr(file_utils, "get_file", offline)
    with pytest.raises(TaskError) as e:
        _backbones.check_weights("MobileNetV2", 96, "imagenet")
    msg = str(e.value)
    assert "--weights none" in msg and "--weights /path/to/file.h5" in msg and "\n" not in msg


def test_weights_file_and_missing_file(tmp_path: Path) -> None:
    from hpsearch.objectives import _backbones

    base = _backbones.build_backbone("MobileNetV2", 32, "none")
    path = tmp_path / "mobilenet_v2_notop.weights.h5"
    base.save_weights(path)
    loaded = _backbones.build_backbone("MobileNetV2", 32, str(path))
    assert not loaded.trainable
    np.testing.assert_allclose(loaded.get_weights()[0], base.get_weights()[0])
    tuned = _backbones.build_backbone("MobileNetV2", 32, "none", trainable_layers=10)
    assert tuned.trainable_weights and len(tuned.trainable_weights) < len(base.weights)
    with pytest.raises(TaskError, match="not found"):
        _backbones.resolve_weights(str(tmp_path / "missing.h5"))


# -- array tasks ------------------------------------------------------------------------------
def test_mnist_cnn_contract() -> None:
    task = get_task("mnist_cnn")
    data = task.load_data(str(need(MNIST)), seed=0)
    assert data.sizes == {"train": 8000, "val": 1000, "test": 1000}
    assert data.spec.input_shape == (28, 28, 1) and data.spec.num_classes == 10
    run_trial(task, array_slice(data, 512), task.baselines[0])


def test_cifar10_cnn_contract(tmp_path: Path) -> None:
    task = get_task("cifar10_cnn")
    data = task.load_data(str(need(CIFAR)), seed=0)
    assert data.sizes == {"train": 9000, "val": 1000, "test": 10000}
    assert data.spec.input_shape == (32, 32, 3) and data.spec.class_names[0] == "airplane"
    x = data.images("train", np.arange(100))
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.1
    # the folder's parent works too (cifar-10-batches-py/ inside it)
    (tmp_path / "cifar-10-batches-py").symlink_to(CIFAR, target_is_directory=True)
    again = task.load_data(str(tmp_path), seed=0)
    np.testing.assert_array_equal(again.labels("val"), data.labels("val"))
    small = array_slice(data, 256)
    for params in task.baselines:
        run_trial(task, small, params)


def test_cifar10_missing_test_batch(tmp_path: Path) -> None:
    (tmp_path / "data_batch_1").symlink_to(need(CIFAR) / "data_batch_1")
    with pytest.raises(TaskError, match="no test_batch"):
        get_task("cifar10_cnn").load_data(str(tmp_path))
    with pytest.raises(TaskError, match="no CIFAR-10 batches"):
        get_task("cifar10_cnn").load_data(str(tmp_path / ".." / "nothing-here-either" / ".."))


# -- image folders ----------------------------------------------------------------------------
def copy_subset(src: Path, dst: Path, per_class: int) -> Path:
    """A small copy of an image-folder data set: the first ``per_class`` files of each class folder."""
    for cls_dir in sorted(p for p in src.rglob("*") if p.is_dir() and any(f.is_file() for f in p.iterdir())):
        out = dst / cls_dir.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(cls_dir.iterdir())[:per_class]:
            shutil.copy(f, out / f.name)
    return dst


def test_cats_vs_dogs_contract() -> None:
    task = get_task("cats_vs_dogs")
    data = task.load_data(str(need(CATS)), seed=0, options=SMALL)
    assert data.sizes == {"train": 600, "val": 160, "test": 40}  # test = a seeded fifth of validation/
    assert data.spec.input_shape == (32, 32, 3) and data.spec.class_names == ("cats", "dogs")
    assert {k: data.spec.options[k] for k in SMALL} == SMALL and data.cached
    assert len(data.labels("test")) == 40 and set(data.labels("train")) == {0, 1}
    again = task.load_data(str(CATS), seed=0, options=SMALL)
    assert again.paths("test") == data.paths("test")  # seeded
    img = data.images("test", np.array([0, 5]))
    assert img.shape == (2, 32, 32, 3) and img.dtype == np.uint8
    batch_x, batch_y = next(iter(data.inputs("train", 16, shuffle=True, seed=3).x))
    assert batch_x.shape == (16, 32, 32, 3) and batch_x.dtype.name == "float32" and float(batch_x.numpy().max()) > 1
    assert data.merged(("train", "val")).sizes["train"] == 760
    run_trial(task, data.head({"train": 64, "val": 32, "test": 8}), task.baselines[0])


def test_corrupt_images_are_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = copy_subset(need(CATS), tmp_path / "cats", per_class=6)
    (root / "train" / "cats" / "garbage.jpg").write_bytes(os.urandom(2048))
    good = sorted((root / "train" / "dogs").glob("*.jpg"))[0].read_bytes()
    (root / "validation" / "dogs" / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (root / "train" / "dogs" / "empty.jpg").write_bytes(b"")
    (root / "train" / "dogs" / "notes.txt").write_text("not an image, not counted")
    task = get_task("cats_vs_dogs")
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        data = task.load_data(str(root), seed=0, options=SMALL)
    warnings = [r.getMessage() for r in caplog.records if r.name == "hpsearch" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    n = int(warnings[0].split()[1])
    assert n in (2, 3)  # garbage and empty; a truncated JPEG too where TensorFlow rejects it
    assert data.skipped == n and f"{n} unreadable" in data.description
    assert data.sizes["train"] == 12 and sum(data.sizes.values()) == 24 + 1 - (n - 2)  # 4 x 6 copied
    for split in ("train", "val", "test"):
        n_seen = sum(int(y.shape[0]) for _, y in data.inputs(split, 4).x)
        assert n_seen == data.sizes[split] == len(data.labels(split))


def test_empty_class_folder_and_bad_layouts(tmp_path: Path) -> None:
    root = copy_subset(need(CATS), tmp_path / "cats", per_class=3)
    (root / "validation" / "birds").mkdir()
    (root / "train" / "birds").mkdir()
    task = get_task("cats_vs_dogs")
    with pytest.raises(TaskError, match=r"class folder .*birds has no images.*add images"):
        task.load_data(str(root), options=SMALL)
    shutil.rmtree(root / "train" / "birds")
    with pytest.raises(TaskError, match="same class folders"):
        task.load_data(str(root), options=SMALL)
    with pytest.raises(TaskError, match="no train/ folder"):
        task.load_data(str(tmp_path), options=SMALL)
    with pytest.raises(TaskError, match="needs --data-dir"):
        get_task("image_folder").load_data(None, options=SMALL)


def test_image_folder_flat_layout_and_backbones(tmp_path: Path) -> None:
    src = need(CATS) / "train"
    root = copy_subset(src, tmp_path / "flat", per_class=20)  # flat/<class>/*.jpg
    task = get_task("image_folder")
    data = task.load_data(str(root), seed=0, options={**SMALL, "backbone": "EfficientNetB0"})
    assert data.sizes == {"train": 32, "val": 4, "test": 4}  # seeded 80/10/10
    assert data.spec.options["backbone"] == "EfficientNetB0"
    run_trial(task, data, task.baselines[0])
    from hpsearch.objectives._base import DataSpec

    for backbone in ("ResNet50", "VGG16"):  # MobileNetV2: test_cats_vs_dogs_contract
        spec = DataSpec((32, 32, 3), 3, ("a", "b", "c"), {**SMALL, "backbone": backbone})
        params = {
            **task.baselines[0],
            "pooling": "flatten",
            "dense_units": 32,
            "fine_tune": True,
            "fine_tune_layers": 10,
        }
        model = task.build_model(params, spec)
        assert model.output_shape == (None, 3)
        assert any(layer.name.startswith(backbone.lower()[:5]) for layer in model.layers)


# -- CelebA -----------------------------------------------------------------------------------
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def make_celeba(
    root: Path, n: int = 40, *, csv: bool = False, partition: bool = True, nested: bool = False, seed: int = 0
) -> tuple[Path, np.ndarray]:
    """A small CelebA folder: real JPEGs (44x36, men darker) and the official (or Kaggle CSV) lists."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    male = rng.integers(0, 2, n)
    images = root / "img_align_celeba" / ("img_align_celeba" if nested else "")
    images.mkdir(parents=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    attrs = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    attrs[:, CELEBA_ATTRIBUTES.index("Male")] = np.where(male == 1, 1, -1)
    for name, m in zip(names, male):
        pixels = rng.integers(0, 120 if m else 255, (44, 36, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(images / name, quality=90)
    parts = np.repeat([0, 1, 2], [n - n // 4, n // 8, n // 4 - n // 8])
    if csv:
        rows = ["image_id," + ",".join(CELEBA_ATTRIBUTES)]
        rows += [f"{f}," + ",".join(str(v) for v in a) for f, a in zip(names, attrs)]
        (root / "list_attr_celeba.csv").write_text("\n".join(rows) + "\n")
        if partition:
            (root / "list_eval_partition.csv").write_text(
                "image_id,partition\n" + "".join(f"{f},{p}\n" for f, p in zip(names, parts))
            )
    else:
        rows = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
        rows += [f"{f} " + " ".join(f"{v:2d}" for v in a) for f, a in zip(names, attrs)]
        (root / "list_attr_celeba.txt").write_text("\n".join(rows) + "\n")
        if partition:
            (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(names, parts)))
    return root, male


def test_celeba_gender_contract(tmp_path: Path) -> None:
    task = get_task("celeba_gender")
    root, male = make_celeba(tmp_path / "celeba", 40)
    data = task.load_data(str(root), seed=0, options=SMALL)
    assert data.sizes == {"train": 30, "val": 5, "test": 5}  # the official partition file
    assert data.spec.class_names == ("female", "male") and data.spec.input_shape == (32, 32, 3)
    np.testing.assert_array_equal(data.labels("train"), male[:30])
    np.testing.assert_array_equal(data.labels("test"), male[35:])
    capped = task.load_data(str(root), seed=0, options={**SMALL, "max_images": "20"})
    assert capped.sizes == {"train": 16, "val": 2, "test": 2}  # each split's first 80/10/10% of 20
    run_trial(task, data, task.baselines[0])


def test_celeba_without_partition_csv_nested_and_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    task = get_task("celeba_gender")
    root, male = make_celeba(tmp_path / "kaggle", 30, csv=True, partition=False, nested=True)
    images = root / "img_align_celeba" / "img_align_celeba"
    (images / "000003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (images / "000004.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="hpsearch"):
        data = task.load_data(str(root), seed=0, options={**SMALL, "max_images": 20})
    # the first 20 images in order, 16/2/2, less one corrupt and one missing training image
    assert data.sizes == {"train": 14, "val": 2, "test": 2}
    np.testing.assert_array_equal(data.labels("val"), male[16:18])
    messages = " ".join(r.getMessage() for r in caplog.records if r.name == "hpsearch")
    assert "skipped 1 image(s) listed" in messages and "skipped 1 corrupt" in messages


def test_celeba_missing_attribute_file(tmp_path: Path) -> None:
    task = get_task("celeba_gender")
    root, _ = make_celeba(tmp_path / "celeba", 12)
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(TaskError, match=r"no list_attr_celeba\.txt or list_attr_celeba\.csv .*put CelebA"):
        task.load_data(str(root), options=SMALL)
    (root / "list_attr_celeba.txt").write_text(
        "12\nSmiling Young\n" + "".join(f"{i:06d}.jpg 1 -1\n" for i in range(1, 13))
    )
    with pytest.raises(TaskError, match="no attribute 'Male'"):
        task.load_data(str(root), options=SMALL)
    shutil.rmtree(root / "img_align_celeba")
    with pytest.raises(TaskError, match="no img_align_celeba"):
        task.load_data(str(root), options=SMALL)


# -- plug-ins ---------------------------------------------------------------------------------
def test_plugin_task_runs_through_the_cli(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
    }
    env.pop("HPSEARCH_STORAGE", None)
    cmd = HPSEARCH + [
        "run",
        "--task",
        "plugin_task",
        "--study",
        "plug",
        "--n-trials",
        "2",
        "--max-epochs",
        "2",
        "--pruner",
        "none",  # both trials run to the end: ASHA may stop trial 1 after its first epoch
        "--storage",
        f"sqlite:///{tmp_path / 'p.db'}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "trial 0 COMPLETE" in out.stdout and "baseline=0" in out.stdout and "trial 1 COMPLETE" in out.stdout
    sys.path.insert(0, str(REPO / "tests"))
    try:
        obj = get_task("plugin_task:TASK")
        assert obj.name == "plugin_task" and validate_params(obj, obj.baselines[0])
    finally:
        sys.path.remove(str(REPO / "tests"))


# -- slow: the real input sizes ---------------------------------------------------------------
@pytest.mark.slow
def test_cats_vs_dogs_at_160_through_the_cli(tmp_path: Path) -> None:
    cmd = HPSEARCH + [
        "run",
        "--task",
        "cats_vs_dogs",
        "--data-dir",
        str(need(CATS)),
        "--weights",
        "none",
        "--n-trials",
        "1",
        "--max-epochs",
        "1",
        "--study",
        "cats",
        "--storage",
        f"sqlite:///{tmp_path / 'c.db'}",
    ]
    out = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "trial 0 COMPLETE" in out.stdout and "baseline=0" in out.stdout
