"""The baselines as a prior, `create --baseline FILE`, and the replay benchmark's driver (fast)."""

from __future__ import annotations

import json
from pathlib import Path
import sys
from typing import Any

from conftest import hpsearch
import optuna
import pytest

from hpsearch._prior import BaselinePriorSampler

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

optuna.logging.set_verbosity(optuna.logging.ERROR)

BASELINE = {"x": 2.0, "lr": 1e-3, "opt": "adam"}


def _space(trial: optuna.Trial) -> None:
    trial.suggest_float("x", -10, 10)
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_categorical("opt", ["adam", "sgd", "rmsprop", "adadelta"])


def test_prior_samples_start_up_trials_around_the_baseline_and_decays() -> None:
    sampler = BaselinePriorSampler(optuna.samplers.RandomSampler(seed=1), [BASELINE], seed=1, weight=1.0, scale=0.05)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (_space(t), 0.0)[1], n_trials=200)
    early = study.trials[:10]
    late = study.trials[150:]
    near = lambda ts: sum(abs(t.params["x"] - 2.0) < 3.0 for t in ts) / len(ts)  # noqa: E731
    # Uniform on [-10, 10] lands within 3 of the baseline 30 % of the time.
    # The prior's share of the first ten trials is about 3/4, and its steps (std 1) stay within 3.
    assert near(early) >= 0.6
    assert near(late) < 0.5
    assert sampler.prior_probability(0) == 1.0 and sampler.prior_probability(90) == pytest.approx(0.1)
    assert all(1e-5 <= t.params["lr"] <= 1e-1 for t in study.trials)


def test_prior_leaves_enqueued_trials_alone_and_centres_on_the_best_baseline() -> None:
    good, bad = {"x": 5.0, "lr": 1e-2, "opt": "sgd"}, {"x": -9.0, "lr": 1e-4, "opt": "adam"}
    sampler = BaselinePriorSampler(
        optuna.samplers.RandomSampler(seed=0), [bad, good], seed=0, weight=1.0, horizon=1e9, scale=0.05
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    for i, p in enumerate([bad, good]):
        study.enqueue_trial(p, user_attrs={"baseline": i})
    study.optimize(lambda t: (_space(t), -abs(t.params["x"] - 5.0))[1], n_trials=30)
    assert study.trials[0].params == bad and study.trials[1].params == good
    later = study.trials[2:]
    assert sum(abs(t.params["x"] - 5.0) < 3.0 for t in later) >= 0.8 * len(later)
    assert sum(t.params["opt"] == "sgd" for t in later) >= 0.5 * len(later)


def _digits_file(tmp_path: Path, **override: object) -> Path:
    params = {
        "n_layers": 1,
        "units_0": 32,
        "activation": "tanh",
        "dropout": 0.0,
        "optimizer": "adam",
        "learning_rate": 0.005,
        "batch_size": 64,
        **override,
    }
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"format": "hpsearch-params", "version": 1, "task": "digits", "params": params}))
    return path


def test_create_with_a_baseline_file_enqueues_it_after_the_tasks_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    mine = _digits_file(tmp_path)
    hpsearch("create", "--task", "digits", "--study", "b", "--storage", url, "--baseline", str(mine), cwd=tmp_path)
    study = optuna.load_study(study_name="b", storage=url)
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.user_attrs["baseline"] for t in waiting] == [0, 1]
    assert waiting[1].system_attrs["fixed_params"] == json.loads(mine.read_text())["params"]
    assert study.user_attrs["settings"]["user_baselines"] == [json.loads(mine.read_text())["params"]]


@pytest.mark.parametrize(
    ("override", "needle"),
    [({"units_0": 100000}, "units_0"), ({"optimizer": "lbfgs"}, "lbfgs"), ({"bogus": 1}, "bogus")],
)
def test_a_baseline_outside_the_space_is_refused_and_nothing_is_written(
    tmp_path: Path, override: dict[str, object], needle: str
) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    bad = _digits_file(tmp_path, **override)
    r = hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        "b",
        "--storage",
        url,
        "--baseline",
        str(bad),
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--baseline" in lines[0] and needle in lines[0]
    assert not (tmp_path / "h.db").exists() or not optuna.get_all_study_names(url)


def test_a_baseline_file_that_is_not_params_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x80\x81 not json")
    r = hpsearch(
        "create",
        "--task",
        "digits",
        "--study",
        "b",
        "--storage",
        f"sqlite:///{tmp_path / 'h.db'}",
        "--baseline",
        str(junk),
        cwd=tmp_path,
        check=False,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "junk.json" in r.stderr


# -- the replay driver, on a small synthetic table of the digits space -------------------------------
def _table(n: int = 60, task_name: str = "digits") -> object:
    import replay_bench

    from hpsearch.objectives import get_task

    task = get_task(task_name)
    sampler = optuna.samplers.RandomSampler(seed=3)
    study = optuna.create_study(sampler=sampler)
    rows = []
    for i in range(n):
        trial = study.ask()
        task.search_space(trial)
        p = trial.params
        study.tell(trial, 0.0)
        # A learnable landscape: accuracy rises with log learning rate up to 1e-2, curves saturate.
        quality = 1.0 - abs(__import__("math").log10(p["learning_rate"]) + 2.0) / 3.0
        curve = [round(0.1 + 0.85 * quality * (1 - 0.6**k), 4) for k in range(1, 6)]
        rows.append(
            {
                "index": i,
                "params": p,
                "val_accuracy": curve,
                "epoch_seconds": [1.5, 1, 1, 1, 1],
                "overhead_seconds": 0.5,
                "max_epochs": 5,
            }
        )
    return replay_bench.Table(task, rows, max_epochs=5)


def _surrogate(table: Any, spread: float) -> Any:
    """The surrogate of ``table`` with two more seeds of its first three rows, ``spread`` above and below."""
    import replay_bench

    repeats = [
        {**r, "seed": s, "val_accuracy": [round(v + d, 4) for v in r["val_accuracy"]]}
        for r in table.rows[:3]
        for s, d in ((1, spread), (2, -spread))
    ]
    return replay_bench.Surrogate(table.task, table.rows, 5, repeats)


@pytest.mark.parametrize("name", ["tpe", "hpsearch", "tpe-hyperband", "c:mvg+asha", "kt-hyperband"])
def test_replay_runs_a_strategy_within_its_budget_deterministically(name: str) -> None:
    import replay_bench

    table = _table(task_name="mnist_mlp" if name.startswith("kt") else "digits")  # KT's space: search_bench
    method = replay_bench.methods()[name]
    a = replay_bench.simulate(method, table, seed=7, budget=60.0)
    b = replay_bench.simulate(method, table, seed=7, budget=60.0)
    assert a == b
    assert a["trajectory"] and all(t <= 60.0 for t, _ in a["trajectory"])
    values = [v for _, v in a["trajectory"]]
    assert values == sorted(values) and a["best"] == values[-1] <= table.best()
    # The clock is the table's: a full trial costs 0.5 + 5.5 s, so at most 10 full trials fit in 60 s.
    assert a["epochs"] <= 60.0 / 1.0


def test_replay_pruning_buys_more_trials_and_workers_share_one_study() -> None:
    import replay_bench

    table = _table()
    m = replay_bench.methods()
    plain = replay_bench.simulate(m["tpe"], table, seed=1, budget=120.0)
    pruned = replay_bench.simulate(m["tpe-hyperband"], table, seed=1, budget=120.0)
    assert pruned["pruned"] > 0 and pruned["complete"] + pruned["pruned"] > plain["complete"]
    four = replay_bench.simulate(m["hpsearch-nobaseline"], table, seed=1, budget=60.0, workers=4)
    one = replay_bench.simulate(m["hpsearch-nobaseline"], table, seed=1, budget=60.0, workers=1)
    assert four["epochs"] > 3 * one["epochs"]


def test_replay_lookup_returns_the_recorded_configuration_itself() -> None:
    table = _table()
    for i in (0, 17, 42):
        assert table.lookup(table.rows[i]["params"]) == i


def test_surrogate_is_exact_on_recorded_configurations_and_draws_noise_per_trial() -> None:
    import numpy as np
    import replay_bench

    table = _table()
    rows = table.rows
    # Two more seeds of the first three configurations, 0.01 above and below the table's curve.
    sur = _surrogate(table, 0.01)
    # Leaves of one, no bootstrap: the mean is the recorded curve on a recorded configuration (and
    # the seeds' mean on a repeated one), and a continuous average of them in between.
    np.testing.assert_allclose(sur.mean_curve(rows[10]["params"]), rows[10]["val_accuracy"], atol=1e-3)
    np.testing.assert_allclose(sur.mean_curve(rows[1]["params"]), rows[1]["val_accuracy"], atol=1e-3)
    assert len(sur.noise) == 9 and sur.noise_sd_at_095 > 0
    p = rows[10]["params"]
    assert sur.curve(p, key=(0, 1)) == sur.curve(p, key=(0, 1))  # seeded by (run seed, trial number)
    draws = {tuple(sur.curve(p, key=(0, k)).val) for k in range(12)}
    assert len(draws) > 1  # fresh noise per trial, which the nearest-neighbour lookup cannot give
    assert all(abs(a - b) <= 0.05 for d in draws for a, b in zip(d, rows[10]["val_accuracy"]))
    run = replay_bench.simulate(replay_bench.methods()["hpsearch-nobaseline"], sur, seed=3, budget=60.0)
    assert run == replay_bench.simulate(replay_bench.methods()["hpsearch-nobaseline"], sur, seed=3, budget=60.0)
    assert run["epochs"] > 0 and all(t <= 60.0 for t, _ in run["trajectory"])
    with pytest.raises(SystemExit, match="--repeat-top"):
        replay_bench.Surrogate(table.task, rows, 5, [])


def test_peer_cost_charges_plain_optuna_the_measured_plain_fit_seconds_and_hpsearch_its_own() -> None:
    import replay_bench

    table = _table()
    # Measured costs: plain model.fit takes 2x the trial path per later epoch for batches <= 32 and
    # the same above (digits: 16-128); the start (set-up + first epoch) costs 0.8x everywhere.
    costs = []
    for r in table.rows:
        slow = r["params"]["batch_size"] <= 32
        h = {"epoch_seconds": [1.0, 0.5, 0.5], "overhead_seconds": 0.25, "error": None}
        p = {"epoch_seconds": [0.8, 1.0 if slow else 0.5, 1.0 if slow else 0.5], "overhead_seconds": 0.2, "error": None}
        costs.append({"index": r["index"], "params": r["params"], "plain": p, "hpsearch": h})
    cost = replay_bench.PeerCost(table, costs)
    small = min((r["params"] for r in table.rows), key=lambda p: p["batch_size"])
    large = max((r["params"] for r in table.rows), key=lambda p: p["batch_size"])
    start, epoch = cost.ratios(small)
    assert start == pytest.approx(0.8, rel=1e-6) and epoch > 1.6  # leaves of 8 rows average near the edge
    assert cost.ratios(large)[1] < 1.25
    scaled = cost.scale(replay_bench.Curve([0.5, 0.6], [1.5, 1.0], 0.5), small)
    assert scaled.val == [0.5, 0.6] and scaled.overhead_s == pytest.approx(0.4) and scaled.epoch_s[1] > 1.6
    # In a run, only the strategies that do not run through hpsearch pay the plain path.
    m = replay_bench.methods()
    before = {n: replay_bench.simulate(m[n], table, seed=2, budget=60.0) for n in ("tpe", "hpsearch-nobaseline")}
    table.peer_cost = cost
    try:
        after = {n: replay_bench.simulate(m[n], table, seed=2, budget=60.0) for n in ("tpe", "hpsearch-nobaseline")}
    finally:
        table.peer_cost = None
    assert after["hpsearch-nobaseline"] == before["hpsearch-nobaseline"]
    assert after["tpe"]["epochs"] < before["tpe"]["epochs"]
    with pytest.raises(SystemExit, match="--cost-sample"):
        replay_bench.PeerCost(table, costs[:5])


def test_merge_takes_hpsearch_runs_from_either_clock_but_a_peers_only_from_its_own(tmp_path: Path) -> None:
    import replay_bench

    def doc(clock: str, runs: dict[str, list[dict[str, object]]]) -> dict[str, object]:
        return {
            "task": "digits",
            "budget": 60.0,
            "seeds": 2,
            "seed_offset": 0,
            "max_epochs": 5,
            "table": {"lookup": "surrogate", "peer_cost": clock, "baseline_value": 0.5},
            "summary": {"1": {}},
            "runs": {"1": runs},
            "command": clock,
        }

    def run(seed: int, best: float) -> dict[str, object]:
        return {"seed": seed, "best": best, "trajectory": [[1.0, best]], "complete": 1, "pruned": 0, "epochs": 5}

    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(doc("plain", {"tpe": [run(0, 0.5), run(1, 0.6)]})))
    trial_path = tmp_path / "trial.json"
    trial_path.write_text(
        json.dumps(
            doc(
                "trial-path",
                {"hpsearch-nobaseline": [run(1, 0.9), run(0, 0.8)], "random": [run(0, 0.1), run(1, 0.2)]},
            )
        )
    )
    out = tmp_path / "merged.json"
    replay_bench.merge([plain, trial_path], out)
    merged = json.loads(out.read_text())
    assert sorted(merged["runs"]["1"]) == ["hpsearch-nobaseline", "tpe"]  # random ran on the other clock
    assert [r["seed"] for r in merged["runs"]["1"]["hpsearch-nobaseline"]] == [0, 1]
    s = merged["summary"]["1"]["without_baselines"]
    assert s["best_peer"] == "tpe" and s["methods"]["hpsearch-nobaseline"]["best_median"] == pytest.approx(0.85)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**doc("plain", {}), "budget": 30.0}))
    with pytest.raises(SystemExit, match="budget"):
        replay_bench.merge([plain, other], tmp_path / "no.json")
    with pytest.raises(SystemExit, match="budget"):
        replay_bench.merge([plain], tmp_path / "no.json", replace=[other])

    # --replace: a new default's runs take the place of the old ones; the file keeps its own clock
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc("plain", {"tpe": [run(0, 0.5), run(1, 0.6)], "hpsearch-nobaseline": [run(0, 0.3)]})))
    replay_bench.merge([old], out, replace=[trial_path])
    merged = json.loads(out.read_text())
    assert merged["table"]["peer_cost"] == "plain" and sorted(merged["runs"]["1"]) == ["hpsearch-nobaseline", "tpe"]
    assert sorted(r["best"] for r in merged["runs"]["1"]["hpsearch-nobaseline"]) == [0.8, 0.9]
    assert [r["best"] for r in merged["runs"]["1"]["tpe"]] == [0.5, 0.6]
    assert merged["replaced"] == [
        {"file": "trial.json", "methods": ["hpsearch-nobaseline", "random"], "date": None, "command": "trial-path"}
    ]
    # --rename: the old default's runs stay beside the new one's under another name (or are dropped)
    old.write_text(
        json.dumps(
            doc(
                "plain",
                {"tpe": [run(0, 0.5)], "hpsearch-nobaseline": [run(0, 0.3)], "hpsearch": [run(0, 0.4)]},
            )
        )
    )
    replay_bench.merge(
        [old], out, replace=[trial_path], rename={"hpsearch-nobaseline": "hpsearch-v3-nobaseline", "hpsearch": ""}
    )
    merged = json.loads(out.read_text())
    assert sorted(merged["runs"]["1"]) == ["hpsearch-nobaseline", "hpsearch-v3-nobaseline", "tpe"]
    assert [r["best"] for r in merged["runs"]["1"]["hpsearch-v3-nobaseline"]] == [0.3]
    assert sorted(r["best"] for r in merged["runs"]["1"]["hpsearch-nobaseline"]) == [0.8, 0.9]
    assert merged["renamed"] == {"hpsearch-nobaseline": "hpsearch-v3-nobaseline", "hpsearch": ""}


def test_goal_one_treats_never_as_never_on_both_sides() -> None:
    import replay_bench

    def runs(speed: float) -> list[dict[str, object]]:
        # 40 seeds: 24 reach 0.95 (at 100..330 s / speed), 16 end at 0.90 and never reach it.
        out: list[dict[str, object]] = []
        for i in range(40):
            best = 0.95 if i < 24 else 0.90
            t = (100.0 + 10 * i) / speed
            out.append({"seed": i, "best": best, "trajectory": [[t, best]], "complete": 1, "pruned": 0, "epochs": 1})
        return out

    same = replay_bench.summarize(
        {"hpsearch-nobaseline": runs(1.0), "tpe": runs(1.0)},
        budget=420.0,
        baseline_value=None,
        focus="hpsearch-nobaseline",
    )
    # 60 % of the runs reach the peer's median (0.95): finite medians, the same for both.
    assert same["target"] == 0.95 and same["methods"]["tpe"]["reached"] == pytest.approx(0.6)
    assert same["time_ratio"] == pytest.approx(1.0) and not same["goal1_met"] and same["goal1_p"] > 0.5
    # Goal 1's line is half the peer's median time (295 s / 2): 5 of 40 runs (100..140 s) are there by then.
    assert same["goal1_line"] == pytest.approx(147.5)
    assert same["methods"]["tpe"]["reached_by_half_peer"] == pytest.approx(5 / 40)
    # Pairs (focus, peer) with the focus under half the peer's time, "never" tied with "never": 16 x 16
    # ties, 24 x 16 finite against never, 49 finite pairs below and 7 tied (j = 2i + 10): by hand.
    assert same["goal1_share"] == pytest.approx((0.5 * 256 + 384 + 49 + 0.5 * 7) / 1600)
    fast = replay_bench.summarize(
        {"hpsearch-nobaseline": runs(4.0), "tpe": runs(1.0)},
        budget=420.0,
        baseline_value=None,
        focus="hpsearch-nobaseline",
    )
    # Four times as fast with the same failures: below half the peer's times; its failures tie the peer's.
    assert fast["time_ratio"] == pytest.approx(0.25) and fast["goal1_met"] and fast["goal1_p"] < 0.05
    assert fast["methods"]["hpsearch-nobaseline"]["reached_by_half_peer"] == pytest.approx(24 / 40)
    assert fast["goal1_share"] > 0.6


def test_the_incumbent_is_the_best_complete_trial_worth_its_configuration_at_its_best_epoch() -> None:
    import replay_bench

    table = _table()
    run = replay_bench.simulate(replay_bench.methods()["hpsearch-nobaseline"], table, seed=5, budget=120.0)
    assert run["pruned"] > 0 and run["incumbent"]
    # On the lookup a configuration's curve is its value: the incumbent's worth is a recorded epoch,
    # never above the best value seen, and it only rises (a complete trial must beat the last one).
    worth = [v for _, v in run["incumbent"]]
    assert worth == sorted(worth) and run["expected"] == worth[-1] <= run["best"]
    recorded = {v for row in table.val for v in row}
    assert all(v in recorded for v in worth)
    assert all(t <= 120.0 for t, _ in run["incumbent"])


def test_the_oracle_bound_is_at_least_the_pick_at_every_moment_and_above_it_with_noise() -> None:
    """``oracle`` (stop 32): the most any complete trial so far is worth. It rises, at every moment it
    is at least what the pick (``incumbent``, the best value) is worth, and with training noise the
    luckiest trial is not always the best configuration: in some seeds the bound is strictly above."""
    import replay_bench

    sur = _surrogate(_table(), 0.02)
    gaps = []
    for seed in range(6):
        run = replay_bench.simulate(replay_bench.methods()["hpsearch-nobaseline"], sur, seed=seed, budget=60.0)
        oracle, inc = run["oracle"], run["incumbent"]
        assert oracle and inc and [v for _, v in oracle] == sorted(v for _, v in oracle)
        for t, v in inc:
            assert v <= max(w for s, w in oracle if s <= t) + 1e-9
        gaps.append(oracle[-1][1] - inc[-1][1])
    assert min(gaps) >= 0 and max(gaps) > 0


def test_the_expected_score_ranks_by_what_the_incumbent_is_worth_not_by_lucky_epochs() -> None:
    import replay_bench

    def runs(seen: float, worth: float) -> list[dict[str, object]]:
        return [
            {
                "seed": i,
                "best": seen + 0.001 * (i % 5),
                "trajectory": [[100.0 + i, seen + 0.001 * (i % 5)]],
                "expected": worth + 0.001 * (i % 5),
                "incumbent": [[150.0 + i, worth + 0.001 * (i % 5)]],
                "complete": 1,
                "pruned": 0,
                "epochs": 1,
            }
            for i in range(30)
        ]

    # The focus sees luckier epochs (0.97 against 0.95) but its incumbents are worth less (0.93 against 0.94).
    groups = {"hpsearch-nobaseline": runs(0.97, 0.93), "tpe": runs(0.95, 0.94)}
    seen = replay_bench.summarize(groups, budget=420.0, baseline_value=None, focus="hpsearch-nobaseline")
    worth = replay_bench.summarize(
        groups, budget=420.0, baseline_value=None, focus="hpsearch-nobaseline", score="expected"
    )
    assert seen["score"] == "observed" and seen["goal2_p"]["tpe"] < 0.05 and seen["target"] == pytest.approx(0.952)
    assert worth["score"] == "expected" and worth["goal2_p"]["tpe"] > 0.95 and worth["target"] == pytest.approx(0.942)
    assert worth["methods"]["hpsearch-nobaseline"]["reached"] == 0.0  # its incumbents never get to 0.942
    both = replay_bench.summaries({"1": groups}, budget=420.0, baseline_value=None)["1"]
    assert set(both) == {"without_baselines", "with_baselines", "without_baselines_expected", "with_baselines_expected"}


def test_surrogate_draws_noise_from_configurations_at_the_same_place_on_their_curves() -> None:
    import replay_bench

    table = _table()
    rows = table.rows
    # Four configurations repeated with tiny seed noise (+-0.002), one slow starter whose seeds
    # disagree by +-0.15 at epoch 1 (as mnist_mlp's row 287 did: 0.19-0.36).
    high = sorted(range(len(rows)), key=lambda i: -rows[i]["val_accuracy"][0])[:4]
    slow = [{**rows[0], "index": 999, "val_accuracy": [0.25, 0.6, 0.7, 0.75, 0.78]}]
    repeats = [
        {**rows[i], "seed": s, "val_accuracy": [round(v + d, 4) for v in rows[i]["val_accuracy"]]}
        for i in high
        for s, d in ((1, 0.002), (2, -0.002))
    ] + [{**slow[0], "seed": s, "val_accuracy": [0.25 + d, 0.6, 0.7, 0.75, 0.78]} for s, d in ((1, 0.15), (2, -0.15))]
    sur = replay_bench.Surrogate(table.task, rows + slow, 5, repeats)
    assert len(sur.noise_means) == 5
    p = rows[high[0]]["params"]
    mean = sur.mean_curve(p)
    spread = max(abs(a - b) for k in range(200) for a, b in zip(sur.curve(p, key=(1, k)).val, mean))
    # Drawn from the 3 nearest mean curves (the high ones): the slow starter's +-0.15 never lands here.
    assert spread < 0.01
    slow_draws = {sur.curve(slow[0]["params"], key=(1, k)).val[0] for k in range(50)}
    assert max(slow_draws) - min(slow_draws) > 0.2  # but its own neighbourhood keeps its spread


def test_recheck_retrains_the_top_configurations_and_picks_by_the_mean_of_their_measurements() -> None:
    import dataclasses

    import replay_bench

    table = _table()
    rows = table.rows
    lucky, steady, poor = (rows[i]["params"] for i in (0, 1, 2))
    # Fresh measurements: the lucky configuration's 0.99 was one good draw (it is worth 0.80); the
    # steady one measures 0.95 again. Each retraining costs 0.5 + 5 x 1 s.
    fresh = {json.dumps(lucky, sort_keys=True): 0.80, json.dumps(steady, sort_keys=True): 0.95}

    class Fresh(replay_bench.Table):  # type: ignore[misc, name-defined]
        def curve(self, params, key):  # type: ignore[no-untyped-def]
            v = fresh[json.dumps(params, sort_keys=True)]
            return replay_bench.Curve([v] * 5, [1.0] * 5, 0.5)

    table.__class__ = Fresh
    done = [(0.99, 0, lucky, [0.9, 0.99]), (0.95, 1, steady, [0.95] * 5), (0.5, 2, poor, [0.5] * 5)]
    method = dataclasses.replace(replay_bench.methods()["c:hpsearch-recheck3"], recheck=2, recheck_reserve=0.2)

    def recheck(budget: float) -> tuple[list[tuple[float, float]], dict[str, int], float]:
        incumbent = [(10.0, 0.99)]  # the search's own pick: the lucky trial, its single best epoch
        counts: dict[str, int] = {"epochs": 0}
        traj: list[tuple[float, float]] = []
        best = replay_bench._recheck(
            method, table, list(done), incumbent, traj, 0.99, counts, seed=0, budget=budget, workers=1
        )
        return incumbent, counts, best

    incumbent, counts, best = recheck(100.0)
    # The top two (not the poor one) retrained once each, one after the other from 80 s: 0.2 s of
    # hpsearch's storage, 0.5 s to start and 5 epochs, ends at 85.765 s and 91.53 s.
    assert counts["rechecks"] == 2 and counts["epochs"] == 10 and best == 0.99
    # The lucky one's mean is 0.895 at its best epoch, the steady one's 0.95: the steady one is picked,
    # worth its mean curve, known when the last retraining ends.
    assert incumbent[-1] == (91.53, 0.95)
    # Time for one retraining only (27.2 s + 5.7 s): the search's own pick is the one retrained, and
    # stays the pick, now valued by its mean; with time for none, the search's pick stands as it was.
    incumbent, counts, _ = recheck(34.0)
    assert counts["rechecks"] == 1 and incumbent[-1] == (32.965, 0.895)
    incumbent, counts, _ = recheck(20.0)
    assert incumbent == [(10.0, 0.99)] and "rechecks" not in counts


def test_live_recheck_remeasures_new_bests_within_the_budget_and_changes_nothing_when_off() -> None:
    """``Method.live_recheck`` (stop 33): each new best is trained once more, unpruned, within the
    same budget, and two pick rules read the one search. Switched off, it is the default exactly."""
    import dataclasses

    import replay_bench

    table = _table()
    m = replay_bench.methods()
    live = m["c:v4-live"]
    run = replay_bench.simulate(live, table, seed=5, budget=120.0)
    assert run == replay_bench.simulate(live, table, seed=5, budget=120.0)
    default = replay_bench.simulate(m["hpsearch-nobaseline"], table, seed=5, budget=120.0)
    off = replay_bench.simulate(dataclasses.replace(live, live_after=10**6), table, seed=5, budget=120.0)
    assert off.pop("incumbent_eager") == off["incumbent"] == off.pop("incumbent_plain") == off.pop("incumbent_v6")
    assert not any(len(v["curves"]) > 1 for v in off.pop("leads").values()) and off == default
    # Re-measurements happen, inside the budget, and are trials of the study: they cost epochs.
    assert run["rechecks"] >= 2 and all(t <= 120.0 for t, _ in run["incumbent"] + run["incumbent_eager"])
    # On the lookup a configuration measures the same every time, so a re-measurement only confirms:
    # the eager rule ends on best_trial itself, the strict one on the best re-measured configuration,
    # never worth more; and every worth is a recorded epoch of the table.
    recorded = {v for row in table.val for v in row}
    assert run["incumbent"][-1][1] <= run["incumbent_eager"][-1][1]
    assert all(v in recorded for _, v in run["incumbent"] + run["incumbent_eager"])
    # The search's own best_trial (version 4's pick over the same search) ends where the eager rule
    # ends on the lookup; a re-measurement that is no trial while it trains (stop 34) is one at its end.
    assert run["incumbent_plain"][-1] == run["incumbent_eager"][-1]
    # Every lead is recorded with its measurements, for scoring pick rules offline: the re-measurements
    # are the run's, and the last lead is worth what the plain pick says at one of its epochs.
    leads = run["leads"]
    assert sum(len(v["curves"]) - 1 for v in leads.values()) == run["rechecks"]
    assert run["incumbent_plain"][-1][1] in leads[max(leads, key=int)]["worth"]
    hidden = replay_bench.simulate(m["c:v4-live-hidden"], table, seed=5, budget=120.0)
    assert hidden["rechecks"] >= 2 and hidden["incumbent_plain"][-1][1] == hidden["incumbent_eager"][-1][1]
    # With noise, each rule's pick is at most what the oracle bound says some complete trial is worth.
    sur = _surrogate(table, 0.02)
    for seed in range(4):
        r = replay_bench.simulate(live, sur, seed=seed, budget=60.0)
        bound = r["oracle"][-1][1]
        assert max(r[k][-1][1] for k in ("incumbent", "incumbent_eager", "incumbent_v6")) <= bound + 1e-9


def test_pick_rules_scored_offline_reproduce_the_picks_the_run_made() -> None:
    """``pick_rules.py`` (stop 34) replays pick rules over a live run's recorded leads: its ``eager``,
    ``baseline-or-lead`` and ``plain`` must end where the run's own ``incumbent_eager``,
    ``incumbent_v6`` (settings version 6's pick, stop 35) and ``incumbent_plain`` ended, at every seed,
    with baselines and without, or the rules it compares are not scored on the searches the run made."""
    import pick_rules
    import replay_bench

    sur = _surrogate(_table(), 0.05)  # noise enough that an earlier lead's second run can overtake
    rechecked = 0
    apart = 0  # runs whose version-6 pick differs from version 5's at some time
    for name in ("c:v4-live", "c:v4-live+baselines"):
        live = replay_bench.methods()[name]
        nb = len(sur.task.baselines) if live.baselines else 0
        for seed in range(6):
            run = replay_bench.simulate(live, sur, seed=seed, budget=60.0)
            rechecked += run["rechecks"]
            for rule, recorded in (
                ("eager", "incumbent_eager"),
                ("baseline-or-lead", "incumbent_v6"),
                ("plain", "incumbent_plain"),
            ):
                traj = pick_rules.trajectory(run, pick_rules.RULES[rule], live.smooth, nb)
                assert traj[-1][1] == run[recorded][-1][1]
            apart += run["incumbent_v6"] != run["incumbent_eager"]
            for rule in pick_rules.RULES.values():  # every rule picks a recorded lead's worth
                worth = pick_rules.trajectory(run, rule, live.smooth, nb)[-1][1]
                assert any(worth in v["worth"] for v in run["leads"].values())
    assert rechecked > 0 and apart > 0


def test_a_replay_table_holds_rows_of_one_machine_and_one_precision(tmp_path: Path) -> None:
    """The rows' seconds are the replay's clock: a table trained on two CPUs (or in two precisions) is
    refused by the replay and by the table builder (benchmarks/NOTES.md, stop 25)."""
    import replay_bench
    import replay_table

    xeon = [{"cpu_model": "Xeon", "precision": None}, {"cpu_model": "Xeon", "precision": "mixed_bfloat16"}]
    assert replay_table.machine_mismatch(xeon, "Xeon", "mixed_bfloat16") is None
    assert replay_table.machine_mismatch([], "EPYC", "float32") is None
    assert "Xeon" in (replay_table.machine_mismatch(xeon, "EPYC", "mixed_bfloat16") or "")
    assert "mixed_bfloat16" in (replay_table.machine_mismatch(xeon, "Xeon", "float32") or "")

    row = {"params": {"learning_rate": 0.01}, "val_accuracy": [0.5], "epoch_seconds": [1.0], "max_epochs": 1}
    path = tmp_path / "digits.jsonl"
    path.write_text(
        "\n".join(json.dumps({**row, "index": i, "cpu_model": c}) for i, c in enumerate(["Xeon", "EPYC"])) + "\n"
    )
    with pytest.raises(SystemExit, match="mixes rows trained on"):
        replay_bench.load_table("digits", 1, path)
    # Repeats (the surrogate's noise: only their accuracies are used) may come from another CPU, not
    # from another precision.
    assert replay_table.machine_mismatch(xeon, None, "mixed_bfloat16") is None
    assert "float32" in (replay_table.machine_mismatch(xeon, None, "float32") or "")
    path.write_text(json.dumps({**row, "index": 0, "cpu_model": "Xeon", "precision": "mixed_bfloat16"}) + "\n")
    repeat = {**row, "index": 0, "seed": 1, "cpu_model": "EPYC", "precision": "float32"}
    (tmp_path / "digits_repeats.jsonl").write_text(json.dumps(repeat) + "\n")
    with pytest.raises(SystemExit, match="digits_repeats.jsonl mixes rows trained on"):
        replay_bench.load_table("digits", 1, path, surrogate=True)


def test_the_wall_clock_pick_is_the_first_best_complete_trial_within_the_budget() -> None:
    import search_bench

    def end(t: float, trial: int, state: str, value: float | None, epoch: int = 10) -> dict[str, object]:
        return {
            "ev": "trial_end",
            "t": t,
            "trial": trial,
            "state": state,
            "value": value,
            "params": {"x": trial},
            "best_epoch": epoch,
        }

    rows = [
        {"ev": "epoch", "t": 5.0, "trial": 0, "epoch": 1, "val_accuracy": 0.90},
        end(10.0, 0, "COMPLETE", 0.90),
        end(20.0, 1, "COMPLETE", 0.95, epoch=7),
        end(25.0, 2, "PRUNED", 0.99),  # pruned: never the pick, whatever its value
        end(30.0, 3, "COMPLETE", 0.95),  # equal to trial 1, later: study.best_trial keeps the first
        end(31.0, 4, "FAIL", None),
        end(50.0, 5, "COMPLETE", 0.97),  # after the budget: the run was over
    ]
    pick = search_bench.summarize(rows, 40.0, (0.95,))["pick"]
    assert pick == {"t": 20.0, "trial": 1, "value": 0.95, "params": {"x": 1}, "best_epoch": 7}
    # Keras Tuner's events carry no params: no pick, not a wrong one.
    assert search_bench.summarize([{**r, "params": None} for r in rows], 40.0, (0.95,))["pick"] is None


def test_the_wall_clock_pick_of_hpsearch_is_the_pick_export_would_write(tmp_path: Path) -> None:
    import search_bench
    from test_recheck import _trial

    from hpsearch._recheck import enqueue_live_recheck
    from hpsearch._study import StudySettings
    from hpsearch._study import create_study
    from hpsearch.storage import open_storage

    db = tmp_path / "study.db"
    url = f"sqlite:///{db}"
    settings = StudySettings(task="digits", n_trials=10, baselines=False, live_recheck=True, value_window=1)
    study = create_study(open_storage(url, create_tables=True), "bench", settings, url=url)[0]

    def told(lr: float, curve: list[float], **attrs: object) -> optuna.trial.FrozenTrial:
        _trial(study, lr, curve, **attrs)  # a COMPLETE trial with its curve, as test_recheck.py adds them
        return study.trials[-1]

    def recheck(curve: list[float]) -> None:  # a worker trains the waiting live recheck
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        trial.set_user_attr("history", {"val_accuracy": curve})
        study.tell(trial, max(curve))

    enqueue_live_recheck(study, told(0.01, [0.90, 0.96], baseline=0))  # trial 0, a seed baseline, leads
    recheck([0.95, 0.97])  # trial 1: the baseline's mean curve [0.925, 0.965]
    enqueue_live_recheck(study, told(0.003, [0.93, 0.975]))  # trial 2 leads the search
    recheck([0.90, 0.93])  # trial 3: its mean [0.915, 0.9525], below the baseline's
    ends = [{"ev": "trial_end", "t": 10.0 * (n + 1), "trial": n, "state": "COMPLETE"} for n in range(4)]
    pick = search_bench.product_pick(db, ends)
    # Not best_trial (trial 2, 0.975 once): the re-measured baseline by its mean curve, as `export` picks.
    assert pick is not None and pick["trial"] == 0 and pick["trials"] == [0, 1]
    assert pick["value"] == pytest.approx(0.965) and pick["best_epoch"] == 2
    assert pick["params"] == {"learning_rate": 0.01} and pick["t"] == 20.0
