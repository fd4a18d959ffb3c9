"""No native start-up noise on stderr: TensorFlow's absl lines and libjpeg's complaints."""

from __future__ import annotations

from pathlib import Path
import re
import subprocess
import sys

from conftest import MNIST_T10K
from conftest import ROOT
from conftest import cli_env
from conftest import hpsearch
from conftest import need
import pytest


def _env() -> dict[str, str]:
    env = cli_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what a user's shell has: nothing set
    return env


def test_a_mnist_mlp_run_writes_nothing_to_stderr(tmp_path: Path) -> None:
    data = need(MNIST_T10K)
    proc = hpsearch(
        *("run", "--task", "mnist_mlp", "--data-dir", str(data), "--n-trials", "2", "--max-epochs", "1"),
        cwd=tmp_path,
        env=_env(),
    )
    assert len(re.findall(r"^trial \d+ COMPLETE ", proc.stdout, re.M)) == 2, proc.stdout
    assert proc.stderr == "", proc.stderr


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300
    )


def test_the_filter_drops_absl_lines_and_keeps_everything_else(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from hpsearch._quiet import native_stderr_filtered\n"
        "with native_stderr_filtered():\n"
        "    os.write(2, b'I0000 00:00:1796223867.855634   11131 port.cc:153] oneDNN custom operations are on\\n')\n"
        "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
        "    os.write(2, b'E0000 00:00:1796223882.123812   11131 cuda_platform.cc:52] failed call to cuInit\\n')\n"
        "    os.write(2, b'a real problem\\n')\n"
        "    print('from python', file=sys.stderr)\n"
        "print('after', file=sys.stderr)\n"
    )
    assert _python(code, tmp_path).stderr == "a real problem\nfrom python\nafter\n"


def test_corrupt_jpegs_are_counted_without_libjpeg_noise(tmp_path: Path) -> None:
    from PIL import Image

    good = tmp_path / "good.jpg"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(good)
    (tmp_path / "truncated.jpg").write_bytes(good.read_bytes()[:200])  # libjpeg: "... in state 201"
    code = (
        "import numpy as np\n"
        "from hpsearch._quiet import install\n"
        "install()\n"
        "from hpsearch.objectives._images import check_images\n"
        f"paths = [{str(good)!r}, {str(tmp_path / 'truncated.jpg')!r}]\n"
        "out, bad = check_images({'train': (paths, np.array([0, 1]))}, 'test data')\n"
        "print(bad, len(out['train'][0]))\n"
    )
    proc = _python(code, ROOT)
    assert proc.stdout.strip() == "1 1", (proc.stdout, proc.stderr)
    assert "JPEG" not in proc.stderr and "I0000" not in proc.stderr and "E0000" not in proc.stderr, proc.stderr
    assert "skipped 1 corrupt or unreadable image(s) in test data (truncated.jpg)" in proc.stderr


_RETRACE = (
    "import sys\n"
    "from hpsearch._quiet import install\n"
    "install(verbose_flag=len(sys.argv) > 1)\n"
    "import logging, tensorflow as tf\n"
    "logging.basicConfig()\n"  # a handler on the root, as the CLI's
    "for i in range(12):\n"  # a new model per trial: new functions, each traced once
    "    f = tf.function(lambda x: x * 2)\n"
    "    f(tf.constant(float(i)))\n"
)


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflows_retracing_warning_is_off_stderr_unless_verbose(tmp_path: Path, verbose: bool) -> None:
    """Many short trials (ASHA's first rung after one epoch) make TensorFlow warn that functions
    "triggered tf.function retracing": each trial builds its own model, by design."""
    proc = subprocess.run(
        [sys.executable, "-c", _RETRACE, *(["-v"] if verbose else [])],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert ("retracing" in proc.stderr) is verbose, proc.stderr
