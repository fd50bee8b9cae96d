"""Finding run directories and reading each into one row: what was trained and how it ended."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from mmx.report.eval_tables import read_eval

log = logging.getLogger("mmx")

METRICS = ("acc", "error", "top5", "nll", "ece")


def find_run_dirs(roots: list[Path]) -> list[Path]:
    """Every folder under ``roots`` that holds an mmx run (its ``config.yaml`` is written first)."""
    found = set()
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(root)
        for path in [root / "config.yaml", *root.rglob("config.yaml")]:
            if path.is_file() and path.parent.name != ".hydra":
                found.add(path.parent)
    return sorted(found)


def read_run(run_dir: Path) -> dict:
    """One row for a run; raises ValueError with the reason when the directory is broken."""
    try:
        cfg = OmegaConf.load(run_dir / "config.yaml")
        experiment = cfg.get("experiment")
        row = {
            "run_dir": str(run_dir), "experiment": experiment,
            "table": experiment.split("/")[1] if experiment and experiment.startswith("paper/") else "runs",
            "dataset": cfg.dataset.name, "model": cfg.model.name, "regime": cfg.mixup.name,
            "alpha": float(cfg.mixup.alpha) if cfg.mixup.name != "none" else None,
            "layers": ",".join(map(str, cfg.mixup.layers)) if cfg.mixup.name != "none" else "",
            "epochs": int(cfg.epochs), "loss": cfg.loss, "seed": int(cfg.seed),
            "labels_per_class": cfg.dataset.get("labels_per_class"), "smoke": bool(cfg.get("smoke", False)),
        }
    except Exception as error:
        raise ValueError(f"config.yaml unreadable ({error})") from error
    summary_path = run_dir / "summary.json"
    if not summary_path.exists():  # killed during its first epoch
        return {**row, "finished": False, "epochs_done": 0}
    try:
        summary = json.loads(summary_path.read_text())
        row.update(finished=bool(summary["finished"]), epochs_done=int(summary["epochs_done"]),
                   best_epoch=summary["best"]["epoch"])
        for block in ("final", "best"):
            for metric in METRICS:
                row[f"{block}_{metric}"] = summary[block].get(metric)
    except Exception as error:
        raise ValueError(f"summary.json unreadable ({type(error).__name__}: {error})") from error
    try:
        row.update(read_eval(run_dir))
    except Exception as error:
        raise ValueError(f"eval.json unreadable ({type(error).__name__}: {error})") from error
    return row


def collect(roots: list[Path]) -> pd.DataFrame:
    """All runs under ``roots``; broken and smoke runs are reported by name and left out."""
    rows = []
    for run_dir in find_run_dirs(roots):
        try:
            row = read_run(run_dir)
        except ValueError as error:
            log.warning("skipping broken run %s: %s", run_dir, error)
            continue
        if row["smoke"]:
            log.warning("skipping smoke run %s (smoke=true runs check recipes; their numbers mean nothing)", run_dir)
            continue
        rows.append(row)
    return pd.DataFrame(rows)


def read_curves(run_dir: str) -> pd.DataFrame:
    """metrics.csv of one run (empty if it has none yet)."""
    path = Path(run_dir) / "metrics.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame()
