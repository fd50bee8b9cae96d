"""Mixing methods. Each is one module here and one YAML under ``configs/mixup/`` (``none``, ``input``,
``manifold``, ``cutmix``, ...); :mod:`mmx.mixing.base` says what a method is. Nothing else in mmx lists them: config
choices, ``--help``, the tables' order (``none`` first, then by name) and the tests read the ``mixup`` group."""

from __future__ import annotations

from mmx.mixing.base import Draw, MixContext, MixingMethod, coerce, method_class, mix, shipped_settings


def Mixer(name: str, **settings) -> MixingMethod:
    """What ``_target_: mmx.mixing.Mixer`` builds: the configs of runs written before methods had classes of their own
    name this factory; it builds the class of the method ``name`` names now."""
    return method_class(shipped_settings(name))(name=name, **settings)


__all__ = ["Draw", "MixContext", "MixingMethod", "Mixer", "coerce", "method_class", "mix"]
