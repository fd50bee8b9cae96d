"""Plain training on one-hot targets (``mixup=none``): the baseline every table lists first."""

from __future__ import annotations

from mmx.mixing.base import MixContext, MixingMethod


class NoMixing(MixingMethod):
    """No program but ``None``: no hook, one-hot targets, one forward pass. ``alpha``, ``points`` and
    ``points_per_step`` are accepted and unused, so that a sweep over the regimes with ``mixup.alpha=...`` composes
    for every job."""

    def __init__(
        self,
        name: str,
        alpha: float = 0.0,
        points: list[int] = (),
        points_per_step: int = 1,
        *,
        context: MixContext,
    ):
        super().__init__(name, context=context)
