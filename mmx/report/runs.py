"""Finding run directories and reading each into one row: what was trained and how it ended."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from mmx.errors import UserError
from mmx.metrics import scores, test_metrics, val_metrics
from mmx.report.cells import cell_key, settings_of
from mmx.run_dir import RunDir
from mmx.summary import chosen_on, ending

log = logging.getLogger("mmx")


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


def points(mixup: DictConfig) -> list[int]:
    """A run's eligible mixing points (runs written before mmx named them points called them layers)."""
    return list(mixup.get("points", mixup.get("layers", [])))


def read_run(run_dir: Path) -> dict:
    """One row for a run; raises :class:`UserError` naming the damaged file when the directory is broken."""
    run = RunDir(run_dir)
    cfg = run.read_config()
    summary = run.read_summary()  # checked: a damaged one is named
    try:
        row = config_row(cfg, run_dir)
        settings = settings_of(cfg, (summary or {}).get("precision"))
        validates = cfg.dataset.get("val_size") is not None
    except (AttributeError, KeyError, TypeError, ValueError, OmegaConfBaseException) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise UserError(f"{run.config_path} is damaged ({type(error).__name__}: {first})") from None
    row.update(cell=cell_key(settings), precision=settings["precision"])
    if summary is None:  # killed during its first epoch
        chosen = chosen_on(validates)
        return {**row, "finished": False, "epochs_done": 0, "ended": ending(None), "best_chosen_on": chosen}
    row.update(
        finished=bool(summary["finished"]),
        ended=ending(summary),
        epochs_done=int(summary["epochs_done"]),
        best_epoch=(summary["best"] or {}).get("epoch"),
        best_chosen_on=summary.get("best_chosen_on", chosen_on(False)),  # runs before validation splits: test
    )
    for block in ("final", "best"):
        for metric in [*test_metrics(), *val_metrics()]:
            # NaN, not None, for a run stopped before its first recorded epoch: the columns stay numeric
            row[f"{block}_{metric}"] = (summary[block] or {}).get(metric, math.nan)
    evaluation = run.read_eval()
    if evaluation is not None:
        try:
            row.update(flatten_eval(evaluation))
        except (KeyError, TypeError, AttributeError) as error:
            raise UserError(f"{run.eval_path} is damaged ({type(error).__name__}: {error})") from None
    return row


def config_row(cfg: DictConfig, run_dir: Path) -> dict:
    """What a run's config.yaml says of it: the columns of its row that name what was trained."""
    experiment = cfg.get("experiment")
    mixing = cfg.mixup.name != "none"
    loss = cfg.loss.name if isinstance(cfg.loss, DictConfig) else cfg.loss
    row = {
        "run_dir": str(run_dir),
        "experiment": experiment,
        "table": experiment.split("/")[1] if experiment and experiment.startswith("paper/") else "runs",
        "dataset": cfg.dataset.name,
        "model": cfg.model.name,
        "regime": cfg.mixup.name,
        "alpha": float(cfg.mixup.alpha) if mixing and cfg.mixup.get("alpha") is not None else None,
        "points": ",".join(map(str, points(cfg.mixup))) if mixing else "",
        "epochs": int(cfg.epochs),
        "loss": loss,
        "seed": int(cfg.seed),
        "labels_per_class": cfg.dataset.get("labels_per_class"),
        "smoke": bool(cfg.get("smoke", False)),
    }
    return row


def flatten_eval(result: dict) -> dict:
    """eval.json as flat columns: eval_acc, fgsm_0.01, pgd_0.03, deform_rotation20, ood_msp_auroc, ood_set, ..."""
    calibration = [score.name for score in scores(every=True) if score.calibration]  # NLL, ECE, Brier, ...
    row = {f"eval_{k}": v for k, v in result["clean"].items() if k in ("acc", *calibration)}
    row["eval_checkpoint"] = result["checkpoint"]
    scaled = result.get("temperature")  # absent from eval.json written before temperature scaling
    if scaled and scaled["value"] is not None:  # None: a separable validation split, where no T minimises the NLL
        row["eval_temperature"] = scaled["value"]
        after = scaled["test"]["after"]  # an eval.json of an older mmx lacks the scores added since: left empty
        row.update({f"eval_{k}_scaled": after[k] for k in calibration if k in after})
    row.update({f"fgsm_{eps}": acc for eps, acc in result["fgsm"].items()})
    if result.get("pgd"):
        row.update({f"pgd_{eps}": acc for eps, acc in result["pgd"]["acc"].items()})
    row.update({f"deform_{name}": acc for name, acc in result["deformations"].items()})
    row["ood_set"] = result["ood"]["set"]
    for score in ("msp", "energy"):
        for metric in ("auroc", "fpr95"):
            row[f"ood_{score}_{metric}"] = result["ood"][score][metric]
    return row


def collect(roots: list[Path]) -> pd.DataFrame:
    """All runs under ``roots``; broken and smoke runs are reported by name and left out."""
    rows = []
    for run_dir in find_run_dirs(roots):
        try:
            row = read_run(run_dir)
        except UserError as error:
            log.warning("skipping broken run %s: %s", run_dir, error)
            continue
        if row["smoke"]:
            log.warning("skipping smoke run %s (smoke=on runs check recipes; their numbers mean nothing)", run_dir)
            continue
        rows.append(row)
    return pd.DataFrame(rows)


def read_curves(run_dir: str) -> pd.DataFrame:
    """metrics.csv of one run (empty if it has none yet); raises :class:`UserError` when it is damaged."""
    return pd.DataFrame(RunDir(run_dir).read_metrics())
