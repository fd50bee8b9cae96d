"""summary.json: how a run ended, its final and best epochs, and the check that a file is one mmx wrote."""

from __future__ import annotations

import signal

from mmx.metrics import test_metrics, val_metrics

INTERRUPTED = "interrupted (SIGINT) after its last checkpoint"  # summary.json's ``stopped`` after a Ctrl-C


def stopped_by(signum: int, at: str) -> str:
    """summary.json's ``stopped`` after a stop signal (SIGTERM, a cluster's preemption): where its checkpoint is."""
    return f"interrupted ({signal.Signals(signum).name}) {at}, after a checkpoint of that state"


def ending(summary: dict | None) -> str:
    """How a run ended, from its summary.json: finished, interrupted (Ctrl-C or a stop signal), diverged (any
    other ``stopped`` reason), or unfinished (still training, or killed)."""
    stopped = (summary or {}).get("stopped")
    if stopped:
        return "interrupted" if stopped.startswith("interrupted (") else "diverged"
    return "finished" if summary and summary.get("finished") else "unfinished"


def test_record(test: dict, epoch: int, val: dict | None = None) -> dict:
    """summary.json's ``final``/``best`` entry: every test metric, the epoch, and the validation metrics (``val_*``)
    of a run that has a validation split."""
    record = {**{name: test[name] for name in test_metrics()}, "epoch": epoch}
    if val is not None:
        record.update({name: val[name.removeprefix("val_")] for name in val_metrics()})
    return record


def chosen_on(validation: bool) -> str:
    """Which split picks a run's "best" epoch (and best.pt): its validation split when it has one, else the test set."""
    return "validation" if validation else "test"


def summary_problem(summary) -> str:
    """What makes ``summary`` not a summary.json mmx wrote, in words ("" if nothing): the fields readers rely on."""

    def number(value) -> bool:
        return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)

    if not isinstance(summary, dict):
        return f"it holds a {type(summary).__name__}, not an object"
    for key, valid, what in (
        ("finished", lambda v: isinstance(v, bool), "true or false"),
        ("epochs_done", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a count of epochs"),
    ):
        if key not in summary:
            return f"it has no {key!r}"
        if not valid(summary[key]):
            return f"{key!r} is {summary[key]!r}, not {what}"
    for key in ("stopped", "precision", "best_chosen_on", "experiment"):
        if summary.get(key) is not None and not isinstance(summary[key], str):
            return f"{key!r} is {summary[key]!r}, not text"
    for block in ("final", "best"):
        record = summary.get(block)
        if record is None:
            continue
        if not isinstance(record, dict):
            return f"{block!r} is {record!r}, not an object"
        bad = next((k for k, v in record.items() if not number(v)), None)
        if bad is not None:
            return f"{block}.{bad} is {record[bad]!r}, not a number"
    return ""
