"""What a run leaves behind besides checkpoints: metrics.csv, TensorBoard events, summary.json."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "test_acc", "test_error", "test_nll", "test_ece",
           "epoch_seconds", "train_images_per_second", "test_top5"]

# metrics.csv column -> TensorBoard tag
TAGS = {
    "train_loss": "train/loss", "train_acc": "train/acc", "test_acc": "test/acc", "test_error": "test/error",
    "test_nll": "test/nll", "test_ece": "test/ece", "test_top5": "test/top5", "lr": "lr",
    "train_images_per_second": "throughput/images_per_second", "epoch_seconds": "time/epoch_seconds",
}


class RunLog:
    """Appends one row per epoch to metrics.csv and to TensorBoard under ``tb/``.

    On resume from epoch ``e`` both forget what came after ``e`` (rows written after the last
    checkpoint, before a kill), so no epoch is ever recorded twice.
    """

    def __init__(self, run_dir: Path, resume_epoch: int = 0):
        self.csv_path = run_dir / "metrics.csv"
        self._truncate_after(resume_epoch)
        self.tensorboard = SummaryWriter(log_dir=str(run_dir / "tb"), purge_step=resume_epoch + 1 if resume_epoch else None)

    def _truncate_after(self, epoch: int) -> None:
        rows = self.rows() if self.csv_path.exists() else []
        kept = [row for row in rows if int(row["epoch"]) <= epoch]
        with open(self.csv_path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(kept)

    def rows(self) -> list[dict]:
        with open(self.csv_path, newline="") as handle:
            return list(csv.DictReader(handle))

    def append(self, row: dict) -> None:
        with open(self.csv_path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=COLUMNS).writerow({k: row[k] for k in COLUMNS})
            handle.flush()
            os.fsync(handle.fileno())
        for column, tag in TAGS.items():
            self.tensorboard.add_scalar(tag, row[column], global_step=row["epoch"])
        self.tensorboard.flush()

    def close(self) -> None:
        self.tensorboard.close()


def write_json(path: Path, data: dict) -> None:
    """Atomic, so a reader never sees half a summary."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
