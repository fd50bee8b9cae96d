"""Every number mmx records per epoch, in one registry, and the maths of the scores.

:data:`REGISTRY` lists metrics.csv's columns in order. A :class:`Metric` is a number of the epoch itself (its
lr, training loss, time); a :class:`Score` is computed from a split's logits and labels, and records one
column for the test set (``test_<name>``) and, in runs with a validation split, one for it (``val_<name>``,
after every other column). Everything that shows metrics derives from here: metrics.csv, TensorBoard's tags
and HParams metrics, summary.json's ``final``/``best`` (and ``best/*``), the epoch's log line, ``mmx tables``
(which columns it shows by default, their labels and decimals, ``--brief``) and ``mmx eval``'s calibration
table. A score added here (or by :func:`register`, from code of one's own) reaches all of them; runs written
before it existed show it as empty.

torch is imported by the functions that compute, so that what only reads the registry (``mmx tables``,
``mmx --help``) starts without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Metric:
    """One column of metrics.csv: its TensorBoard tag (None: not logged there) and the decimals tables show.

    ``summary`` names a score's column as summary.json's ``final`` and ``best`` and the result tables name it
    (``acc``, ``val_acc``); ``lower_is_better`` is None for numbers that are not a quality (lr, time).
    """

    column: str
    tag: str | None
    decimals: int
    lower_is_better: bool | None = None
    summary: str | None = None
    label: str = ""


def _percent(value: float, images: int) -> float:
    return 100.0 * value / images


@dataclass(frozen=True)
class Score:
    """A number computed from a split's logits and labels.

    ``compute(logits, labels)`` gives a device scalar (no host sync: all scores are read in one), which
    ``finish(value, images)`` turns into the recorded number on the host. ``label`` and ``decimals`` are how result
    tables show it, ``fine_decimals`` how one run's number is read (the epoch's log line, ``--brief``, ``mmx eval``).
    ``validation``: also recorded on the validation split; ``shown``: a column of the result tables by default;
    ``logged``: in the epoch's log line; ``calibration``: a quantity temperature scaling changes, which ``mmx eval``
    reports before and after it; ``per_epoch``: recorded every epoch (metrics.csv and everything after it), else
    computed by ``mmx eval`` only.
    """

    name: str
    label: str
    decimals: int
    lower_is_better: bool
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(compare=False)
    finish: Callable[[float, int], float] = field(default=lambda value, images: value, compare=False)
    validation: bool = True
    shown: bool = False
    logged: bool = False
    calibration: bool = False
    fine_decimals: int | None = None
    per_epoch: bool = True

    @property
    def read_decimals(self) -> int:
        """The decimals of one run's number (log line, ``--brief``, ``mmx eval``)."""
        return self.decimals if self.fine_decimals is None else self.fine_decimals

    def test_metric(self) -> Metric:
        return Metric(
            f"test_{self.name}", f"test/{self.name}", self.decimals, self.lower_is_better, self.name, self.label
        )

    def val_metric(self) -> Metric:
        label, name = f"val {self.label}", f"val_{self.name}"
        return Metric(name, f"val/{self.name}", self.decimals, self.lower_is_better, name, label)


# --- the scores' maths (device tensors in, a device scalar out) ------------------------------------


def correct(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many top-1 predictions are right."""
    return (logits.argmax(dim=1) == labels).sum().float()


def correct_top5(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """How many labels are among the five largest logits (all of them, with fewer than five classes)."""
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return (top5 == labels[:, None]).any(dim=1).sum().float()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy in nats."""
    import torch.nn.functional as F

    return F.cross_entropy(logits, labels)


def confidence_bin(confidence: torch.Tensor, bins: int) -> torch.Tensor:
    """Index of the equal-width bin ``((b - 1) / bins, b / bins]`` holding each confidence (0 joins the first)."""
    return (confidence * bins).ceil().long().clamp(1, bins) - 1


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> torch.Tensor:
    """ECE with ``bins`` equal-width confidence bins: sum_b |B_b|/N * |acc(B_b) - conf(B_b)|.

    Confidence is the top softmax probability; a confidence of exactly 0 joins the first bin.
    """
    import torch

    confidence, prediction = probs.max(dim=1)
    hit = (prediction == labels).float()
    bin_index = confidence_bin(confidence, bins)
    conf_sum = torch.zeros(bins, device=probs.device).index_add_(0, bin_index, confidence)
    correct_sum = torch.zeros(bins, device=probs.device).index_add_(0, bin_index, hit)
    return (conf_sum - correct_sum).abs().sum() / len(labels)


def ece(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Expected calibration error of the softmax, 15 bins."""
    return expected_calibration_error(logits.softmax(dim=1), labels)


def brier(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-class Brier score of the softmax: mean over examples of the squared distance to the one-hot label (0 is
    perfect, 2 worst)."""
    import torch.nn.functional as F

    probs = logits.softmax(dim=1)
    return ((probs - F.one_hot(labels, probs.shape[1]).to(probs.dtype)) ** 2).sum(dim=1).mean()


# --- the registry ----------------------------------------------------------------------------------

# metrics.csv's columns in order; a run with a validation split then has each validated score's val_ column.
REGISTRY: list[Metric | Score] = [
    Metric("epoch", None, 0),
    Metric("lr", "lr", 6),
    Metric("train_loss", "train/loss", 4, True),
    Metric("train_acc", "train/acc", 2, False),
    Score("acc", "acc %", 2, False, correct, _percent, logged=True),
    Score("error", "error %", 2, True, correct, lambda value, images: 100.0 - _percent(value, images), shown=True),
    Score("nll", "NLL", 3, True, nll, shown=True, logged=True, calibration=True, fine_decimals=4),
    Score("ece", "ECE", 3, True, ece, shown=True, logged=True, calibration=True, fine_decimals=4),
    Metric("epoch_seconds", "time/epoch_seconds", 1),
    Metric("train_images_per_second", "throughput/images_per_second", 0),
    Score("top5", "top-5 %", 2, False, correct_top5, _percent, validation=False),
    Score("brier", "Brier", 3, True, brier, calibration=True, fine_decimals=4, per_epoch=False),  # mmx eval only
]


def register(entry: Metric | Score) -> None:
    """Add a score (or a column) from code of one's own, before a run starts: it is recorded and shown like those
    above (tests/extending/ does so with a test-only score)."""
    column = entry.test_metric().column if isinstance(entry, Score) else entry.column
    if column in metric_columns(validation=True):
        raise ValueError(f"metrics.csv has a column {column!r} already; give the new entry a name of its own")
    REGISTRY.append(entry)


def scores(every: bool = False) -> list[Score]:
    """The scores recorded every epoch (``every``: also those only ``mmx eval`` computes), in the registry's order."""
    return [entry for entry in REGISTRY if isinstance(entry, Score) and (every or entry.per_epoch)]


def _per_epoch(entry: Metric | Score) -> bool:
    return isinstance(entry, Metric) or entry.per_epoch


def epoch_metrics(validation: bool = False) -> list[Metric]:
    """metrics.csv's columns in order, each as a :class:`Metric`."""
    out = [entry if isinstance(entry, Metric) else entry.test_metric() for entry in REGISTRY if _per_epoch(entry)]
    return out + ([score.val_metric() for score in scores() if score.validation] if validation else [])


def metric_columns(validation: bool) -> list[str]:
    """metrics.csv's columns: a run with a validation split has the ``val_*`` ones too."""
    return [metric.column for metric in epoch_metrics(validation)]


def test_metrics() -> dict[str, Metric]:
    """The test set's scores by their summary name (``acc``, ``error``, ...)."""
    return {score.name: score.test_metric() for score in scores()}


def val_metrics() -> dict[str, Metric]:
    """The validation split's scores by their summary name (``val_acc``, ...)."""
    return {f"val_{score.name}": score.val_metric() for score in scores() if score.validation}


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, every: bool = False) -> dict[str, float]:
    """Every score of a split's logits recorded per epoch (``every``: those of ``mmx eval`` too), by name, read from
    the device in one host sync."""
    import torch

    logits = logits.float()
    registered = scores(every)
    values = torch.stack([score.compute(logits, labels) for score in registered]).tolist()  # the one host sync
    return {score.name: score.finish(value, len(labels)) for score, value in zip(registered, values)}


def epoch_row(epoch: int, lr: float, train: dict, test: dict, seconds: float, val: dict | None = None) -> dict:
    """metrics.csv's row for one epoch, from the trainer's statistics and the test (and validation) scores."""
    row = {
        "epoch": epoch,
        "lr": lr,
        "train_loss": train["train_loss"],
        "train_acc": train["train_acc"],
        "epoch_seconds": seconds,
        "train_images_per_second": train["train_images_per_second"],
    }
    row.update({metric.column: test[name] for name, metric in test_metrics().items()})
    if val is not None:
        row.update({metric.column: val[name.removeprefix("val_")] for name, metric in val_metrics().items()})
    return row


def log_words(test: dict, val: dict | None = None) -> str:
    """The scores of the epoch's log line: ``test acc 95.00 nll 0.1234 ece 0.0123`` (and the validation split's)."""
    logged = [score for score in scores() if score.logged]

    def words(split: str, values: dict, chosen) -> str:
        return f"{split} " + " ".join(f"{s.name} {values[s.name]:.{s.read_decimals}f}" for s in chosen)

    text = words("test", test, logged)
    if val is not None:
        text += "  " + words("val", val, [score for score in logged if score.validation])
    return text
