"""Checks of a parsed command line that argparse cannot express, run before anything is opened."""

from __future__ import annotations

import argparse

from ._heartbeat import check_heartbeat_args


def check_args(args: argparse.Namespace) -> None:
    """Raise ``UsageError`` (exit 2) for a bad combination of flags or a bad study name."""
    from ._study import check_study_name

    check_heartbeat_args(args)
    study = getattr(args, "study", None)
    if study is not None:
        check_study_name(study)
