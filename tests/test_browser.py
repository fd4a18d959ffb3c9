"""The dashboard and the report in a real browser (Debian's headless Chromium).

One small digits study is searched for real (``hpsearch run``, ~30 s on two CPU cores); then
``hpsearch dashboard`` serves it and Chromium loads the study page, and ``hpsearch report``
writes the HTML file that Chromium opens from disk with the network cut off.

Screenshots stay in each test's tmp folder (pytest keeps the last runs under
``/tmp/pytest-of-$USER/``); set ``HPSEARCH_TEST_ARTIFACTS=DIR`` to copy them there as well.
Run only these: ``pytest -m browser``.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import json
import os
from pathlib import Path
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any
import urllib.request

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
HPSEARCH = [sys.executable, "-m", "hpsearch"]
STUDY = "demo"
N_TRIALS, MAX_EPOCHS = 6, 5
HEADLESS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason=f"needs Debian's chromium at {CHROMIUM}: apt-get install -y chromium"
    ),
]


# -- helpers ---------------------------------------------------------------------------------------------
def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPSEARCH_")}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    return env


def chromium(
    url: str,
    tmp: Path,
    *,
    screenshot: Path | None = None,
    window: tuple[int, int] = (1400, 1000),
    budget_ms: int = 15000,
    offline: bool = False,
) -> str:
    """Load ``url`` headless; write a screenshot, or return the DOM after ``budget_ms`` of virtual time."""
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    args = [
        str(CHROMIUM),
        *HEADLESS,
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
        f"--virtual-time-budget={budget_ms}",
    ]
    if offline:  # every http(s) request goes to a dead proxy: the page must need none
        args += ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    r = subprocess.run([*args, url], capture_output=True, text=True, timeout=180)
    shutil.rmtree(profile, ignore_errors=True)
    assert r.returncode == 0, f"chromium failed ({r.returncode}): {r.stderr[-2000:]}"
    if screenshot:
        assert screenshot.is_file(), f"no screenshot: {r.stderr[-2000:]}"
        keep = os.environ.get("HPSEARCH_TEST_ARTIFACTS")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(screenshot, Path(keep) / screenshot.name)
    return r.stdout


def drawn_fraction(png: Path) -> float:
    """The share of pixels that are not (near) white: a blank page scores ~0."""
    from PIL import Image

    im = Image.open(png).convert("L")
    hist = im.histogram()
    return 1.0 - sum(hist[245:]) / (im.width * im.height)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(cwd: Path, port: int) -> Iterator[subprocess.Popen]:
    log = open(cwd / f"dashboard-{port}.log", "w")
    proc = subprocess.Popen(
        [*HPSEARCH, "dashboard", "--port", str(port)],
        cwd=cwd,
        env=env_for(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"dashboard exited: {(cwd / f'dashboard-{port}.log').read_text()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/meta", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "dashboard did not answer within 60 s"
                time.sleep(0.3)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


def section(dom: str, anchor: str) -> str:
    """The rendered ``<section id=anchor>`` of the report."""
    m = re.search(rf'<section id="{anchor}">(.*?)</section>', dom, re.S)
    assert m, f"no section {anchor!r} in the rendered report"
    return m.group(1)


# -- the study ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished digits study (sqlite:///hpsearch.db in this folder), searched for real."""
    d = tmp_path_factory.mktemp("study")
    r = subprocess.run(
        [
            *HPSEARCH,
            "run",
            "--task",
            "digits",
            "--n-trials",
            str(N_TRIALS),
            "--max-epochs",
            str(MAX_EPOCHS),
            "--study",
            STUDY,
            # Hyperband's top bracket never prunes, so 6 trials leave several COMPLETE ones for the
            # importance plot; the default ASHA prunes nearly every trial below the baseline, and a
            # study with one COMPLETE trial shows a note instead (tests/test_report.py checks that).
            "--pruner",
            "hyperband",
        ],
        cwd=d,
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return d


def trials(study_dir: Path) -> list[Any]:
    import optuna

    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{study_dir / 'hpsearch.db'}").trials


# -- tests -------------------------------------------------------------------------------------------------
def test_dashboard_study_page_shows_trials_and_learning_curves(study_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    ts = trials(study_dir)
    assert len(ts) == N_TRIALS
    with dashboard(study_dir, port):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as r:
            ids = {s["study_name"]: s["study_id"] for s in json.load(r)["study_summaries"]}
        page = f"http://127.0.0.1:{port}/dashboard/studies/{ids[STUDY]}"

        dom = chromium(page, tmp_path, window=(1400, 2600))
        assert f"{STUDY} (id={ids[STUDY]})" in dom  # the breadcrumb: the study's name
        assert "Intermediate values" in dom  # the learning curves card ...
        for t in ts:  # ... with one curve per trial (its legend entry)
            assert re.search(rf'class="legendtext"[^>]*>trial #{t.number}\s*<', dom), f"no curve of trial {t.number}"
        assert dom.count('class="main-svg"') >= 6  # plotly drew the history, importance, timeline, curves
        best = max((t for t in ts if t.state.name == "COMPLETE"), key=lambda t: t.value)
        assert f"Best Trial (number={best.number})" in dom

        trial_list = chromium(page + "/trials", tmp_path, window=(1400, 1000))
        for t in ts:
            assert f">Trial {t.number}<" in trial_list, f"trial {t.number} not in the trial list"
        assert ">Pruned<" in trial_list or not any(t.state.name == "PRUNED" for t in ts)

        shot = tmp_path / "dashboard_study.png"
        chromium(page, tmp_path, screenshot=shot, window=(1400, 2600))
        chromium(page + "/trials", tmp_path, screenshot=tmp_path / "dashboard_trials.png", window=(1400, 1000))
    assert drawn_fraction(shot) > 0.03, f"{shot} looks blank"


def test_report_opens_offline_with_its_plots_drawn(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = subprocess.run(
        [*HPSEARCH, "report", "--study", STUDY, "-o", str(out)],
        cwd=study_dir,
        env=env_for(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]

    # the savings, recomputed from the trials
    ts = trials(study_dir)
    finished = [t for t in ts if t.state.name in ("COMPLETE", "PRUNED")]
    ran = sum(t.user_attrs["epochs_run"] for t in finished)
    unpruned = MAX_EPOCHS * len(finished)
    html = out.read_text()
    assert f'id="epochs-run">{ran}<' in html
    assert f'id="epochs-unpruned">{unpruned}<' in html
    assert f'id="epochs-saved">{unpruned - ran}<' in html
    assert f'id="saved-percent">{100 * (unpruned - ran) / unpruned:.1f}%<' in html
    assert f"{ran} of {unpruned} epochs run" in r.stdout

    dom = chromium(out.as_uri(), tmp_path, window=(1400, 7000), budget_ms=10000, offline=True)
    for anchor in ("history", "curves", "importance", "parallel", "slice", "timeline"):
        assert 'class="main-svg"' in section(dom, anchor), f"plot {anchor!r} was not drawn"
    curves = section(dom, "curves")
    assert curves.count('class="trace scatter') >= len([t for t in ts if t.intermediate_values])
    assert "pruned (stopped early)" in curves or not any(t.state.name == "PRUNED" for t in ts)

    shot = tmp_path / "report.png"
    chromium(out.as_uri(), tmp_path, screenshot=shot, window=(1400, 7000), budget_ms=10000, offline=True)
    assert drawn_fraction(shot) > 0.03, f"{shot} looks blank"
