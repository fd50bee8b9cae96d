"""Temperature scaling (Guo et al., On Calibration of Modern Neural Networks, ICML 2017): one scalar T that
divides every logit, fitted on held-out images to minimise their NLL, then applied to the test set.

The NLL of softmax(z / T) is convex in 1 / T, so a bounded 1-D search over log T finds its minimum exactly
and deterministically (no random start, no learning rate). T > 1 softens an over-confident network and
T < 1 sharpens an under-confident one; accuracy never changes, since dividing by T > 0 keeps the arg-max.

A held-out split that the network classifies without a single error has no best T: every image's NLL falls
as T shrinks, towards 0 at T -> 0, so the fit reports the split as separable and gives no temperature (a small
validation split of an accurate network is separable often: 144 digits at 1% error, one run in four).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

BOUNDS = (0.01, 100.0)  # a fitted T at either end means the held-out NLL still falls beyond it


@dataclass(frozen=True)
class Fit:
    temperature: float | None  # None: the images are separable, and no T minimises their NLL
    nll_before: float  # on the images it was fitted on
    nll_after: float | None
    at_bound: bool
    separable: bool = False


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    return float(F.cross_entropy(logits / temperature, labels))


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, bounds: tuple[float, float] = BOUNDS) -> Fit:
    """The T in ``bounds`` that minimises the NLL of ``softmax(logits / T)`` on ``labels`` (float64, on the CPU),
    or none when every image's own logit is its largest (then the NLL only falls as T goes to 0)."""
    logits, labels = logits.detach().double().cpu(), labels.cpu()
    own = logits.gather(1, labels[:, None])
    if bool((logits.masked_fill(F.one_hot(labels, logits.shape[1]).bool(), -math.inf) < own).all()):
        return Fit(None, nll(logits, labels), None, at_bound=False, separable=True)
    low, high = math.log(bounds[0]), math.log(bounds[1])
    found = minimize_scalar(
        lambda log_t: nll(logits, labels, math.exp(log_t)),
        bounds=(low, high),
        method="bounded",
        options={"xatol": 1e-9},
    )
    temperature = math.exp(found.x)
    at_bound = bool(min(found.x - low, high - found.x) < 1e-4)
    return Fit(temperature, nll(logits, labels), nll(logits, labels, temperature), at_bound)
