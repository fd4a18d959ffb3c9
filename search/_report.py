"""``hpsearch report``: one self-contained HTML file about a study, for people.

The page embeds plotly.js once (``include_plotlyjs=True`` on the first figure) and needs no
network: open it from disk, mail it, archive it. It shows the optimization history, every trial's
learning curve (per-epoch ``val_accuracy``; pruned trials dashed), parameter importances,
parallel coordinates, slice plots, a timeline, the best trial's params, all trials, and what
pruning saved: the epochs actually run against the epochs the same trials would have run
without pruning (``max_epochs`` x trials).

Optuna's own plots (``optuna.visualization``, plotly) are reused; only the learning curves are
drawn here, from the ``history`` user attribute the trial runner writes. The report is
read-only and only ever sees the masked storage URL.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
import html
from importlib import metadata
import json
import math
from typing import Any
import warnings

from ._claim import split_surplus
from ._recheck import pick
from ._recheck import pick_line
from ._worker import trial_note

# Figure titles (tests and readers look for them).
TITLE_CURVES = "Learning curves (validation accuracy per epoch)"
MIN_IMPORTANCE_TRIALS = 2  # importances need at least this many COMPLETE trials
FEW_IMPORTANCE_TRIALS = 10  # below this, importances are shown with a caveat

_STATE_STYLE: dict[str, dict[str, Any]] = {
    # state: legend label, line colour, dash, width, opacity
    "COMPLETE": {"label": "complete", "color": "#1f77b4", "dash": "solid", "width": 1.5, "opacity": 0.8},
    "PRUNED": {"label": "pruned (stopped early)", "color": "#ff7f0e", "dash": "dash", "width": 1.2, "opacity": 0.8},
    "FAIL": {"label": "failed", "color": "#d62728", "dash": "dot", "width": 1.2, "opacity": 0.8},
    "RUNNING": {"label": "running", "color": "#7f7f7f", "dash": "dot", "width": 1.2, "opacity": 0.8},
}
_BEST_STYLE = {"color": "#2ca02c", "dash": "solid", "width": 3.5, "opacity": 1.0}


# -- what pruning saved --------------------------------------------------------------------------
@dataclass(frozen=True)
class PruningSavings:
    """Epochs run by the finished (COMPLETE + PRUNED) trials against an unpruned search of them."""

    max_epochs: int
    trials: int  # finished trials: COMPLETE + PRUNED
    pruned: int
    epochs_run: int  # sum of epochs_run over those trials
    seconds_run: float  # sum of their wall seconds
    seconds_saved: float | None  # estimate: each pruned trial's seconds per epoch x epochs it skipped

    @property
    def epochs_unpruned(self) -> int:
        return self.max_epochs * self.trials

    @property
    def epochs_saved(self) -> int:
        return self.epochs_unpruned - self.epochs_run

    @property
    def saved_percent(self) -> float:
        return 100.0 * self.epochs_saved / self.epochs_unpruned if self.epochs_unpruned else 0.0

    def sentence(self) -> str:
        if not self.trials:
            return "no finished trials yet: nothing to compare"
        return (
            f"{self.epochs_run} of {self.epochs_unpruned} epochs run "
            f"({self.trials} finished trials x {self.max_epochs}); pruning saved "
            f"{self.epochs_saved} epochs ({self.saved_percent:.1f}%)"
        )


def epochs_run(trial: Any) -> int:
    """Epochs a trial trained: its ``epochs_run`` attribute, else its reported steps (one per epoch,
    whichever step the study counts from)."""
    n = trial.user_attrs.get("epochs_run")
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    steps = trial.intermediate_values
    return len(steps)


def pruning_savings(trials: Iterable[Any], max_epochs: int) -> PruningSavings:
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    pruned = [t for t in finished if t.state.name == "PRUNED"]
    seconds_saved = 0.0
    known = False
    for t in pruned:
        n, secs = epochs_run(t), t.user_attrs.get("seconds")
        if n and isinstance(secs, (int, float)):
            seconds_saved += secs / n * max(0, max_epochs - n)
            known = True
    return PruningSavings(
        max_epochs=max_epochs,
        trials=len(finished),
        pruned=len(pruned),
        epochs_run=sum(epochs_run(t) for t in finished),
        seconds_run=float(sum(t.user_attrs.get("seconds") or 0.0 for t in finished)),
        seconds_saved=round(seconds_saved, 1) if known else (0.0 if not pruned else None),
    )


# -- figures ---------------------------------------------------------------------------------------
def _val_accuracy(trial: Any) -> list[float | None]:
    """Per-epoch validation accuracy: the ``history`` attribute, else the intermediate values."""
    hist = trial.user_attrs.get("history")
    if isinstance(hist, dict) and isinstance(hist.get("val_accuracy"), list):
        return [v if isinstance(v, (int, float)) and math.isfinite(v) else None for v in hist["val_accuracy"]]
    iv = trial.intermediate_values
    return [iv[step] for step in sorted(iv)]  # one step per epoch, counted from 0 or 1 (settings version)


def learning_curves_figure(trials: list[Any], *, max_epochs: int, best_number: int | None) -> Any:
    """One line per trial (x: epoch, 1-based), coloured and dashed by state; the best trial thick green."""
    import plotly.graph_objects as go

    fig = go.Figure()
    shown: set[str] = set()
    ordered = sorted(trials, key=lambda t: (t.number == best_number, t.number))  # best drawn last, on top
    for t in ordered:
        ys = _val_accuracy(t)
        if not ys:
            continue
        state = t.state.name
        is_best = t.number == best_number
        style = _BEST_STYLE if is_best else _STATE_STYLE.get(state, _STATE_STYLE["RUNNING"])
        group = f"best trial #{t.number}" if is_best else _STATE_STYLE.get(state, _STATE_STYLE["RUNNING"])["label"]
        extra = ""
        if t.user_attrs.get("baseline") is not None:
            extra = f" (baseline {t.user_attrs['baseline']})"
        params = "<br>".join(f"{k}={_fmt(v)}" for k, v in sorted(t.params.items()))
        xs = list(range(1, len(ys) + 1))
        marker_symbols, marker_sizes = ["circle"] * len(ys), [5] * len(ys)
        if state == "PRUNED":
            marker_symbols[-1], marker_sizes[-1] = "x", 11  # where the pruner stopped it
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=group,
                legendgroup=group,
                showlegend=group not in shown,
                line={"color": style["color"], "dash": style["dash"], "width": style["width"]},
                marker={"size": marker_sizes, "symbol": marker_symbols, "color": style["color"]},
                opacity=style["opacity"],
                hovertemplate=(
                    f"trial {t.number} {state.lower()}{html.escape(extra)}<br>epoch %{{x}}"
                    f"<br>val_accuracy %{{y:.4f}}<br>{html.escape(params)}<extra></extra>"
                ),
            )
        )
        shown.add(group)
    fig.add_vline(
        x=max_epochs,
        line_dash="dot",
        line_color="#999",
        annotation_text=f"max_epochs {max_epochs}",
        annotation_position="bottom left",
    )
    fig.update_layout(
        title=TITLE_CURVES,
        xaxis_title="epoch",
        yaxis_title="val_accuracy",
        height=480,
        legend_title_text="trials (click to hide)",
        template="plotly_white",
    )
    fig.update_xaxes(dtick=1 if max_epochs <= 30 else None, range=[0.5, max_epochs + 0.5])
    return fig


@dataclass
class _Plot:
    anchor: str
    heading: str
    figure: Any = None
    note: str = ""  # why there is no figure, or a caveat under it


def _optuna_plot(
    anchor: str, heading: str, fn: Callable[[], Any], *, need: int, have: int, what: str = "COMPLETE trial"
) -> _Plot:
    if have < need:
        return _Plot(
            anchor, heading, note=f"needs at least {need} {what}{'s' if need > 1 else ''}; this study has {have}"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fig = fn()
        except Exception as e:  # a plot that cannot be drawn must not cost the whole report
            return _Plot(anchor, heading, note=f"not available: {type(e).__name__}: {e}")
    notes = sorted(
        {
            str(w.message)
            for w in caught
            if not issubclass(w.category, DeprecationWarning) and "experimental" not in str(w.message).lower()
        }
    )
    return _Plot(anchor, heading, fig, note=" ".join(notes))


def _fit_width(fig: Any, max_panels: int = 8) -> Any:
    """Optuna sizes a slice plot at 300 px per parameter; up to ``max_panels`` fit the page instead."""
    panels = sum(1 for key in fig.layout.to_plotly_json() if key.startswith("xaxis"))
    if panels <= max_panels:
        fig.update_layout(width=None, autosize=True)
    return fig


def _plots(study: Any, trials: list[Any], max_epochs: int, best_number: int | None) -> list[_Plot]:
    import optuna.visualization as vis

    n_complete = sum(t.state.name == "COMPLETE" for t in trials)
    n_curves = sum(bool(_val_accuracy(t)) for t in trials)
    plots = [
        _optuna_plot(
            "history", "Optimization history", lambda: vis.plot_optimization_history(study), need=1, have=n_complete
        ),
        _optuna_plot(
            "curves",
            "Learning curves",
            lambda: learning_curves_figure(trials, max_epochs=max_epochs, best_number=best_number),
            need=1,
            have=n_curves,
            what="trial with a reported epoch",
        ),
    ]
    imp = _optuna_plot(
        "importance",
        "Parameter importances",
        lambda: vis.plot_param_importances(study),
        need=MIN_IMPORTANCE_TRIALS,
        have=n_complete,
    )
    if imp.figure is not None:
        if not imp.figure.data:
            imp = _Plot(imp.anchor, imp.heading, note="not available: no parameter is shared by all COMPLETE trials")
        elif n_complete < FEW_IMPORTANCE_TRIALS:
            imp.note = (
                f"Only {n_complete} COMPLETE trials: treat these importances as a rough hint. " + imp.note
            ).strip()
    plots.append(imp)
    plots.append(
        _optuna_plot(
            "parallel", "Parallel coordinates", lambda: vis.plot_parallel_coordinate(study), need=1, have=n_complete
        )
    )
    plots.append(
        _optuna_plot("slice", "Slice plots", lambda: _fit_width(vis.plot_slice(study)), need=1, have=n_complete)
    )
    plots.append(
        _optuna_plot("timeline", "Timeline", lambda: vis.plot_timeline(study), need=1, have=len(trials), what="trial")
    )
    return plots


# -- HTML ------------------------------------------------------------------------------------------
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5em; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
section { background: #fff; border: 1px solid #e4e4e4; border-radius: 6px; padding: 0.5em 1.2em 1em; margin: 1em 0; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { text-align: left; padding: 0.25em 0.8em; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta { color: #666; }
.note { color: #8a6d3b; background: #fcf8e3; padding: 0.4em 0.8em; border-radius: 4px; }
.big { font-size: 1.4em; font-weight: 600; }
nav a { margin-right: 1em; }
tr.PRUNED td.state { color: #d46a00; }
tr.FAIL td.state { color: #c00; }
tr.best td { background: #eaf7ea; }
"""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _e(v: Any) -> str:
    return html.escape(_fmt(v))


def _table(rows: Iterable[tuple[str, Any]], *, ids: dict[str, str] | None = None) -> str:
    out = ["<table>"]
    for k, v in rows:
        attr = f' id="{ids[k]}"' if ids and k in ids else ""
        out.append(f"<tr><th>{html.escape(k)}</th><td{attr}>{_e(v)}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _versions() -> str:
    parts = []
    for pkg in ("hpsearch", "optuna", "plotly"):
        try:
            parts.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return ", ".join(parts)


def build_report(study: Any, settings: Any, *, storage_masked: str) -> tuple[str, PruningSavings]:
    """The report's HTML and the pruning savings. ``storage_masked`` must already be masked."""
    # Surplus trials (beyond the cap, never run: see _claim) are no part of the search.
    trials, _ = split_surplus(study.get_trials(deepcopy=False))
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    complete = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    best = study.best_trial if complete else None  # Optuna's own choice (ties: the first)
    savings = pruning_savings(trials, settings.max_epochs)
    plots = _plots(study, trials, settings.max_epochs, best.number if best else None)
    attrs = study.user_attrs
    name = study.study_name

    parts: list[str] = []
    add = parts.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add(f"<title>hpsearch report: {html.escape(name)}</title><style>{_CSS}</style></head><body><main>")
    add(f'<h1>Study <span id="study-name">{html.escape(name)}</span></h1>')
    add(
        f'<p class="meta">task <b>{html.escape(str(attrs.get("task", settings.task)))}</b>'
        f' &middot; storage <code id="storage">{html.escape(storage_masked)}</code>'
        f" &middot; generated {datetime.now(timezone.utc).isoformat(timespec='seconds')}</p>"
    )
    if attrs.get("description"):
        add(f"<p>{html.escape(str(attrs['description']))}</p>")
    add(
        "<nav>"
        + "".join(
            f'<a href="#{a}">{h}</a>'
            for a, h in [
                ("summary", "Summary"),
                ("best", "Best trial"),
                ("pruning", "Pruning"),
                *[(p.anchor, p.heading) for p in plots],
                ("trials", "All trials"),
            ]
        )
        + "</nav>"
    )

    # summary
    add('<section id="summary"><h2>Summary</h2>')
    state_text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
    rows: list[tuple[str, Any]] = [
        ("trials", f"{len(trials)} ({state_text})"),
        ("sampler", settings.sampler),
        (
            "pruner",
            settings.pruner if settings.pruner == "none" else f"{settings.pruner}, from epoch {settings.prune_after}",
        ),
        ("max epochs per trial", settings.max_epochs),
        ("study cap (finished trials)", settings.n_trials if settings.n_trials else "none"),
        ("seed", settings.seed),
    ]
    if settings.task_options:
        rows.append(("task options", json.dumps(settings.task_options, sort_keys=True)))
    if attrs.get("dataset"):
        rows.append(("data", attrs["dataset"]))
    add(_table(rows))
    add("</section>")

    # best trial
    add('<section id="best"><h2>Best trial</h2>')
    if best is None:
        add('<p class="note">No COMPLETE trial yet.</p>')
    else:
        a = best.user_attrs
        add(f'<p class="big">trial #{best.number}: val_accuracy <span id="best-value">{best.value:.4f}</span></p>')
        brow: list[tuple[str, Any]] = [
            ("best epoch", a.get("best_epoch", "-")),
            ("epochs run", epochs_run(best)),
            ("seconds", a.get("seconds", "-")),
        ]
        if a.get("baseline") is not None:
            brow.append(("baseline", f"yes: the seed notebook's configuration {a['baseline']}"))
        chosen = pick(study)
        if chosen is not None and chosen.measurements > 1:  # after `hpsearch recheck`: what export writes
            brow.append(("export's pick (rechecked)", pick_line(chosen)))
        baselines = [t for t in complete if t.user_attrs.get("baseline") is not None]
        for t in baselines:
            if t.number != best.number:
                brow.append(
                    (
                        f"baseline {t.user_attrs['baseline']} (trial #{t.number})",
                        f"{t.value:.4f} ({best.value - t.value:+.4f} for the best trial)",
                    )
                )
        add(_table(brow))
        add("<h3>Params</h3>")
        add('<table id="best-params"><tr><th>param</th><th>value</th></tr>')
        for k, v in sorted(best.params.items()):
            add(f'<tr><td>{html.escape(k)}</td><td class="num">{_e(v)}</td></tr>')
        add("</table>")
        add(
            f'<p class="meta">Export them with <code>hpsearch export --study {html.escape(name)} -o best.json</code>, '
            "then train the final model with <code>hpsearch train --params best.json</code>.</p>"
        )
    add("</section>")

    # pruning
    s = savings
    add('<section id="pruning"><h2>What pruning saved</h2>')
    add(f"<p>{html.escape(s.sentence())}.</p>")
    prow: list[tuple[str, Any]] = [
        ("finished trials (COMPLETE + PRUNED)", s.trials),
        ("of which pruned", s.pruned),
        ("epochs run", s.epochs_run),
        (f"epochs without pruning ({s.trials} x {s.max_epochs})", s.epochs_unpruned),
        ("epochs saved", s.epochs_saved),
        ("saved", f"{s.saved_percent:.1f}%"),
        ("training seconds spent", round(s.seconds_run, 1)),
        ("training seconds saved (estimate)", "-" if s.seconds_saved is None else s.seconds_saved),
    ]
    add(
        _table(
            prow,
            ids={
                "finished trials (COMPLETE + PRUNED)": "finished-trials",
                "of which pruned": "pruned-trials",
                "epochs run": "epochs-run",
                f"epochs without pruning ({s.trials} x {s.max_epochs})": "epochs-unpruned",
                "epochs saved": "epochs-saved",
                "saved": "saved-percent",
            },
        )
    )
    add(
        '<p class="meta">Epochs saved = max_epochs x finished trials - the epochs they ran. The time estimate '
        "uses each pruned trial's own seconds per epoch. FAIL and RUNNING trials are left out.</p>"
    )
    add("</section>")

    # plots
    first = True
    for p in plots:
        add(f'<section id="{p.anchor}"><h2>{html.escape(p.heading)}</h2>')
        if p.figure is not None:
            add(
                p.figure.to_html(
                    full_html=False,
                    include_plotlyjs=first,
                    div_id=f"fig-{p.anchor}",
                    config={"displaylogo": False, "responsive": True},
                )
            )
            first = False
        if p.note:
            add(f'<p class="note">{html.escape(p.note)}</p>')
        add("</section>")

    # all trials
    add('<section id="trials"><h2>All trials</h2>')
    add(
        '<p class="meta">value: the best val_accuracy of a COMPLETE trial; the last reported one of a '
        "PRUNED trial. epochs: epochs it trained.</p>"
    )
    add(
        "<table><tr><th>#</th><th>state</th><th>value</th><th>epochs</th><th>best epoch</th>"
        "<th>seconds</th><th>params</th><th>note</th></tr>"
    )
    for t in trials:
        a = t.user_attrs
        cls = t.state.name + (" best" if best is not None and t.number == best.number else "")
        value = "-" if t.value is None else f"{t.value:.4f}"
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(t.params.items()))
        add(
            f'<tr class="{cls}"><td class="num">{t.number}</td><td class="state">{t.state.name}</td>'
            f'<td class="num">{value}</td><td class="num">{epochs_run(t)}</td>'
            f'<td class="num">{_e(a.get("best_epoch", "-"))}</td><td class="num">{_e(a.get("seconds", "-"))}</td>'
            f"<td>{html.escape(params)}</td><td>{html.escape(trial_note(t, width=120))}</td></tr>"
        )
    add("</table></section>")
    add(
        f'<footer class="meta"><p>Made by <code>hpsearch report</code> ({html.escape(_versions())}). '
        "Self-contained: plotly.js is embedded, no network needed.</p></footer>"
    )
    add("</main></body></html>")
    return "\n".join(parts) + "\n", savings
