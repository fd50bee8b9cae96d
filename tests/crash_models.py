"""Networks that fail on purpose, to test what the trainer does when training breaks.

Selected from the command line like any model: ``model._target_=crash_models.NaNGradientPreActResNet
+model.nan_at_backward=N`` with this folder on PYTHONPATH.
"""

from __future__ import annotations

from mmx.models import PreActResNet


class NaNGradientPreActResNet(PreActResNet):
    """A PreActResNet whose first parameter gets a NaN gradient in backward pass ``nan_at_backward`` only.

    The loss of that step is finite (it is computed before the update); the update then makes the
    weights NaN, which only a check of the weights can see.
    """

    def __init__(self, nan_at_backward: int, **kwargs):
        super().__init__(**kwargs)
        self.backward_passes = 0

        def poison(gradient):
            self.backward_passes += 1
            return gradient * float("nan") if self.backward_passes == nan_at_backward else gradient

        next(self.parameters()).register_hook(poison)


class InfiniteInEvalPreActResNet(PreActResNet):
    """A PreActResNet that trains normally but whose evaluation logits overflow to infinity: finite weights,
    non-finite test metrics."""

    def forward(self, x, at_point=None):
        logits = super().forward(x, at_point=at_point)
        return logits if self.training else logits * float("inf")
