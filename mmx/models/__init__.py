"""Network families; each is a :class:`StagedNetwork` that exposes its mixing points."""

from mmx.models.mlp import BottleneckMLP
from mmx.models.preact_resnet import PreActResNet
from mmx.models.recurrent import RecurrentNetwork
from mmx.models.staged import StagedNetwork
from mmx.models.wide_resnet import WideResNet

__all__ = ["BottleneckMLP", "PreActResNet", "RecurrentNetwork", "StagedNetwork", "WideResNet"]
