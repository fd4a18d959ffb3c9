"""The one training routine (objectives/_fit.py) and its throughput levers.

Speed itself is measured by ``benchmarks/throughput_bench.py``, never here; these tests check what
the levers must not change (the losses, the signal latency) and how they are chosen.
"""

from __future__ import annotations

from pathlib import Path
import signal
import time
from typing import Any

import numpy as np
import pytest
from test_concurrency import create
from test_concurrency import load
from test_concurrency import start_worker
from test_concurrency import states
from test_concurrency import wait_for

from hpsearch.objectives import TaskError
from hpsearch.objectives import _fit
from hpsearch.objectives import get_task

DIGITS_PARAMS: dict[str, Any] = {
    "n_layers": 1,
    "units_0": 32,
    "activation": "relu",
    "dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": 0.01,
    "batch_size": 16,
}


def test_precision_policy_is_mixed_only_for_backbone_tasks_on_a_gpu() -> None:
    backbone, small = get_task("cats_vs_dogs"), get_task("mnist_mlp")
    assert _fit.precision_policy(backbone, gpus=1) == "mixed_float16"
    assert _fit.precision_policy(backbone, gpus=0) == "float32"
    assert _fit.precision_policy(small, gpus=1) == "float32"
    for name in ("celeba_gender", "image_folder"):
        assert _fit.precision_policy(get_task(name), gpus=2) == "mixed_float16"
    assert _fit.precision_policy(backbone) == "float32"  # this machine: no GPU


def test_bfloat16_on_cpus_with_amx_for_the_convolutional_tasks() -> None:
    for name in ("mnist_cnn", "cifar10_cnn"):
        task = get_task(name)
        assert _fit.precision_policy(task, gpus=0, amx_bf16=True, setting="auto") == "mixed_bfloat16"
        assert _fit.precision_policy(task, gpus=0, amx_bf16=False, setting="auto") == "float32"
        assert _fit.precision_policy(task, gpus=1, amx_bf16=True, setting="auto") == "float32"
    for name in ("mnist_mlp", "digits", "cats_vs_dogs"):  # dispatch-bound, or backbone tasks (not measured)
        assert _fit.precision_policy(get_task(name), gpus=0, amx_bf16=True, setting="auto") == "float32"
    cnn, backbone = get_task("mnist_cnn"), get_task("cats_vs_dogs")
    assert _fit.precision_policy(cnn, gpus=0, amx_bf16=True, setting="float32") == "float32"  # the user's opt-out
    assert _fit.precision_policy(backbone, gpus=1, setting="float32") == "float32"
    assert _fit.precision_policy(get_task("mnist_mlp"), gpus=0, setting="mixed_bfloat16") == "mixed_bfloat16"


def test_amx_flag_is_read_from_cpuinfo() -> None:
    assert _fit.cpu_has_amx_bf16("processor: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    assert not _fit.cpu_has_amx_bf16("processor: 0\nflags\t\t: fpu avx512f avx512_bf16\n")
    assert not _fit.cpu_has_amx_bf16("")


def test_a_bad_precision_setting_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hpsearch import cli

    monkeypatch.setenv("HPSEARCH_PRECISION", "half")
    with pytest.raises(TaskError, match="HPSEARCH_PRECISION='half'"):
        _fit.precision_setting()
    db = tmp_path / "s.db"
    assert cli.main(["status", "--storage", f"sqlite:///{db}", "--study", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "HPSEARCH_PRECISION" in err and "float32" in err
    assert not db.exists()
    monkeypatch.setenv("HPSEARCH_PRECISION", "")
    assert _fit.precision_setting() == "auto"


def test_bfloat16_training_tracks_float32_and_ends_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """mnist_cnn's baseline on MNIST images: per-epoch losses within 5 % of float32, output float32."""
    from conftest import MNIST_T10K
    from conftest import need

    need(MNIST_T10K)
    task = get_task("mnist_cnn")
    full = task.load_data(str(MNIST_T10K), seed=0)
    s = full._splits
    data = type(full)(
        x_train=s["train"][0][:1024],
        y_train=s["train"][1][:1024],
        x_val=s["val"][0][:256],
        y_val=s["val"][1][:256],
        x_test=s["test"][0][:256],
        y_test=s["test"][1][:256],
        class_names=full.spec.class_names,
        description="first 1,024 / 256 of the t10k split",
    )
    params = dict(task.baselines[0])
    runs = {}
    for policy in ("float32", "mixed_bfloat16"):
        monkeypatch.setenv("HPSEARCH_PRECISION", policy)
        runs[policy] = run = _fit.fit_task(task, data, params, epochs=3, seed=3)
        assert run.info["precision"] == policy
        assert run.model.layers[-1].compute_dtype == "float32" and run.model.outputs[0].dtype == "float32"
    assert runs["mixed_bfloat16"].model.layers[1].compute_dtype == "bfloat16"
    f32, bf16 = runs["float32"].history, runs["mixed_bfloat16"].history
    np.testing.assert_allclose(bf16["loss"], f32["loss"], rtol=0.05)
    assert f32["loss"][-1] < 0.8 * f32["loss"][0] and bf16["loss"][-1] < 0.8 * bf16["loss"][0]  # both learn


def test_backbone_head_ends_in_float32_under_mixed_precision() -> None:
    import keras

    from hpsearch.objectives._backbones import head_layers
    from hpsearch.objectives._base import DataSpec

    spec = DataSpec(input_shape=(4, 4, 8), num_classes=2, class_names=("a", "b"))
    with _fit.precision("mixed_float16"):
        inputs = keras.Input((4, 4, 8))
        out = head_layers(inputs, {"pooling": "avg", "dense_units": 8, "dropout": 0.1}, spec)
        model = keras.Model(inputs, out)
        assert model.layers[-2].compute_dtype == "float16"  # the hidden layers are mixed
    assert keras.config.dtype_policy().name == "float32"  # restored
    assert model.layers[-1].compute_dtype == "float32" and out.dtype == "float32"


def test_steps_per_execution_bounds_one_execution() -> None:
    assert _fit.choose_steps_per_execution(0.001) == _fit.MAX_STEPS_PER_EXECUTION
    assert _fit.choose_steps_per_execution(0.1) == 5
    assert _fit.choose_steps_per_execution(0.3) == 1
    assert _fit.choose_steps_per_execution(5.0) == 1
    for step in (0.002, 0.02, 0.07, 0.2):
        assert _fit.choose_steps_per_execution(step) * step <= _fit.EXECUTION_SECONDS


def test_eval_batch_is_large_but_bounded_in_memory() -> None:
    assert _fit.eval_batch_size(32, (28, 28)) == _fit.EVAL_BATCH_MAX
    assert _fit.eval_batch_size(32, (224, 224, 3)) == 32  # never below the training batch
    assert 32 < _fit.eval_batch_size(32, (160, 160, 3)) * 160 * 160 * 3 <= _fit.EVAL_INPUT_FLOATS


def test_batch_size_is_required() -> None:
    with pytest.raises(TaskError, match="batch_size"):
        _fit.batch_size_of({"learning_rate": 0.1})
    assert _fit.batch_size_of({"batch_size": 64}) == 64


def test_levers_leave_the_per_epoch_losses_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """steps_per_execution > 1 and the large validation batch: the same losses as one batch per call."""
    task = get_task("digits")
    data = task.load_data(None, seed=0)
    auto = _fit.fit_task(task, data, DIGITS_PARAMS, epochs=3, seed=7)
    assert auto.info["steps_per_execution"] > 1 and auto.val.batch_size > DIGITS_PARAMS["batch_size"]
    monkeypatch.setattr(_fit, "MAX_STEPS_PER_EXECUTION", 1)
    monkeypatch.setattr(_fit, "EVAL_BATCH_MAX", 1)
    plain = _fit.fit_task(task, data, DIGITS_PARAMS, epochs=3, seed=7)
    assert plain.info["steps_per_execution"] == 1 and plain.val.batch_size == DIGITS_PARAMS["batch_size"]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        np.testing.assert_allclose(auto.history[key], plain.history[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_slow_input_lowers_steps_per_execution() -> None:
    import keras

    task = get_task("digits")
    data = task.load_data(None, seed=0)
    model = task.build_model(DIGITS_PARAMS, data.spec)
    x, y = data.inputs("train", 16).x, data.labels("train")

    class Slow(keras.utils.PyDataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> tuple[Any, Any]:
            time.sleep(0.2)
            return x[i * 16 : (i + 1) * 16], y[i * 16 : (i + 1) * 16]

    step = _fit.estimate_step_seconds(model, _fit.FitInputs(x=Slow()), 16)
    assert step >= 0.2 and _fit.choose_steps_per_execution(step) <= 2


def test_sigterm_with_steps_per_execution_fails_and_requeues_within_5_s(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path / 'spe.db'}"
    create(url, study_name, tmp_path, "--n-trials", "2", "--max-epochs", "200")
    # 0.05 s per batch: several batches per execution, each at most about 0.5 s
    w = start_worker(url, study_name, tmp_path, HPSEARCH_TEST_FAULTS="0:slow", HPSEARCH_TEST_SLOW_SECONDS="0.05")
    study = load(url, study_name)
    wait_for(lambda: states(study).get("RUNNING", 0) == 1, 120, "trial 0 running")
    time.sleep(8)  # past the first execution (it traces the graph) into the epochs
    t0 = time.monotonic()
    w.send_signal(signal.SIGTERM)
    out, _ = w.communicate(timeout=30)
    elapsed = time.monotonic() - t0
    assert w.returncode == 0, out
    assert elapsed < 5, f"worker took {elapsed:.1f} s to stop"
    trials = load(url, study_name).get_trials()
    first = trials[0]
    assert first.state.name == "FAIL" and "SIGTERM" in first.user_attrs["fail_reason"]
    assert first.user_attrs["steps_per_execution"] > 1, first.user_attrs
    assert first.user_attrs["max_execution_s"] <= 2 * _fit.EXECUTION_SECONDS, first.user_attrs
    assert len(first.user_attrs["history"]["loss"]) >= 1  # epochs ran and were recorded
    assert trials[1].state.name == "WAITING" and trials[1].params == first.params  # re-enqueued
