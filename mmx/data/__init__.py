"""Datasets loaded as uint8 tensors, and the batches drawn from them on the device."""
from mmx.data.batches import Normalizer, TrainBatches, eval_batches
from mmx.data.images import ImageSplits

__all__ = ["ImageSplits", "Normalizer", "TrainBatches", "eval_batches"]
