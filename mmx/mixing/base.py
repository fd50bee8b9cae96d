"""What every mixing method is: a :class:`MixingMethod` draws, per batch, what the training step needs, and says what
happens to the batch at a mixing point, to the targets, and to the loss.

A method is one module of this package and one YAML under ``configs/mixup/`` (whose ``_target_`` names its class;
its other keys are the arguments of the class's ``__init__``, checked against their annotations before any work).
What a method needs from the run (mixing points, classes, image shape, device, seed) reaches it in one place, the
:class:`MixContext` it is built with.

A step runs in three forms (eager, ``torch.compile``'d, replayed from a CUDA graph), so a draw has two parts: its
``program`` (host: which code runs, e.g. the mixing points; one compiled graph and one captured graph each) and its
``tensors`` (device: everything that changes from step to step, e.g. lam and the permutation). The step passes both
through without knowing their fields, and calls :meth:`MixingMethod.forward_loss` with them inside the compiled or
captured code, which must therefore depend on ``program`` alone for its control flow and never read a tensor on
the host.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Callable, Hashable

import torch
import torch.nn.functional as F
from hydra.utils import get_class
from omegaconf import DictConfig, ListConfig

from mmx.config import shipped_option
from mmx.errors import UserError

PointHook = Callable[[int, torch.Tensor], torch.Tensor]
# forward(images, hook): the network's logits (autocast applied by the step), ``hook`` called at every mixing point
Forward = Callable[[torch.Tensor, "PointHook | None"], torch.Tensor]


def mix(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Convex combination of a batch with a row-shuffled copy of itself."""
    return lam * x + (1 - lam) * x[perm]


@dataclass(frozen=True)
class MixContext:
    """What a method knows of its run: the network's mixing points (0 .. ``num_points`` - 1, 0 the input), the data's
    classes and image shape, the device the draws live on, the seed of its generators, and the shape of one example's
    state at each mixing point (``point_shapes[k]``, e.g. ``(C, H, W)``; empty where the run did not measure them),
    which a method that draws tensors the size of a hidden state, or boxes on its feature maps, needs before the
    first step."""

    num_points: int
    num_classes: int
    channels: int
    image_size: int
    device: torch.device
    seed: int
    point_shapes: tuple[tuple[int, ...], ...] = ()


@dataclass
class Draw:
    """One batch's draw: ``program`` (host, hashable) chooses the code the step runs; ``tensors`` (device) are its
    inputs besides images and labels."""

    program: Hashable
    tensors: dict[str, torch.Tensor]


class MixingMethod:
    """The base of every mixing method: plain training (no program but ``None``, one-hot targets, no hook).

    Subclasses take their settings as keyword arguments of ``__init__`` (annotated: float, int, bool, str, list[int]),
    after ``name`` and before ``context``, and override what they change: :meth:`check` (one sentence per mistake),
    :attr:`programs`, :meth:`draw`, :meth:`hook`, :meth:`targets`, :meth:`forward_loss` (an extra loss, a second
    forward pass), :meth:`state_dict` (their generators).
    """

    forward_passes = 1  # images through the network per training image (what a step costs, in mmx bench and reproduce)

    def __init__(self, name: str, *, context: MixContext):
        self.name, self.context = name, context

    # --- settings, checked before any work -----------------------------------------------------------

    @classmethod
    def check(cls, settings: DictConfig, num_points: int | None = None) -> None:
        """One sentence per mistake in ``settings`` (the ``mixup`` group's config); ``num_points=None``: the network's
        mixing points are not known yet (checked again when it is built). The types are checked here, from the
        annotations of ``__init__``; subclasses add their ranges."""
        hints = typing.get_type_hints(cls.__init__)
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "name", "context")]
        for key in settings:
            if key in ("name", "_target_"):
                continue
            if key not in accepted:
                raise UserError(
                    f"mixup.{key} is not a setting of mixup={settings.name}; its settings are {', '.join(accepted)}"
                )
            _check_type(f"mixup.{key}", settings[key], hints.get(key))

    @classmethod
    def check_shapes(cls, settings: DictConfig, point_shapes: tuple[tuple[int, ...], ...]) -> None:
        """One sentence if this network's states at the mixing points (one example's shape at each) cannot be mixed
        the way ``settings`` asks (a box needs feature maps); checked once the network is built."""

    # --- per batch, on the host and the device -----------------------------------------------------------

    @property
    def programs(self) -> list[Hashable]:
        """Every program a step can draw (the compiled and captured forms keep one graph each)."""
        return [None]

    def draw(self, batch_size: int) -> Draw:
        return Draw(None, {})

    # --- inside the step (compiled and captured): functions of the program and the tensors ------------------

    def hook(self, program: Hashable, tensors: dict[str, torch.Tensor]) -> PointHook | None:
        """What happens to the batch at each mixing point (None: nothing)."""
        return None

    def targets(
        self, program: Hashable, tensors: dict[str, torch.Tensor], labels: torch.Tensor, num_classes: int
    ) -> torch.Tensor:
        """The soft targets the loss compares the logits with."""
        return F.one_hot(labels, num_classes).float()

    def forward_loss(
        self,
        forward: Forward,
        images: torch.Tensor,
        labels: torch.Tensor,
        program: Hashable,
        tensors: dict[str, torch.Tensor],
        loss_fn: Callable,
        num_classes: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's loss and the logits whose predictions count as its training accuracy: one forward pass with
        :meth:`hook`, the loss against :meth:`targets`. A method with an extra loss or a second pass overrides it."""
        targets = self.targets(program, tensors, labels, num_classes)
        logits = forward(images, self.hook(program, tensors))
        return loss_fn(logits.float(), targets), logits

    # --- resuming ---------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def _check_type(key: str, value, hint) -> None:
    """A setting's value against its annotation, in one sentence (ints are numbers; a bool is neither)."""
    if hint is None or value is None:
        return
    origin = typing.get_origin(hint)
    if origin is typing.Union:
        options = [h for h in typing.get_args(hint) if h is not type(None)]
        hint, origin = options[0], typing.get_origin(options[0])
    shown = list(value) if isinstance(value, ListConfig) else value
    if origin in (list, tuple):
        item = (typing.get_args(hint) or (None,))[0]
        if not isinstance(value, (ListConfig, list, tuple)) or any(not _is(v, item) for v in value):
            raise UserError(f"{key}={shown} is not allowed: it must be a list such as [0, 1, 2]")
        return
    if not _is(value, hint):
        words = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(hint, str(hint))
        raise UserError(f"{key}={shown} is not allowed: it must be {words}")


def _is(value, kind) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return kind is None or isinstance(value, kind)


def coerce(settings: DictConfig, method: type[MixingMethod]) -> None:
    """Integers given for float settings (``mixup.alpha=1``) stored as floats, so that runs compare and group alike."""
    hints = typing.get_type_hints(method.__init__)
    for key in settings:
        if hints.get(key) is float and isinstance(settings[key], int) and not isinstance(settings[key], bool):
            settings[key] = float(settings[key])


def method_class(settings: DictConfig) -> type[MixingMethod]:
    """The class a ``mixup`` config names (``_target_``); configs of runs written before methods had classes of
    their own name ``mmx.mixing.Mixer``, and get the class of the method of their ``name``."""
    target = settings.get("_target_")
    if target == "mmx.mixing.Mixer":
        target = shipped_settings(settings.name)._target_
    try:
        cls = get_class(target)
    except Exception:
        raise UserError(
            f"mixup={settings.get('name')} names {target}, which is not a class mmx can import; fix _target_ in its "
            f"YAML, or put its module on PYTHONPATH"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, MixingMethod)):
        raise UserError(f"mixup={settings.get('name')} names {target}, which is not a mmx.mixing.MixingMethod")
    return cls


def shipped_settings(name: str) -> DictConfig:
    """The YAML of method ``name`` as mmx ships it (configs/mixup/NAME.yaml)."""
    settings = shipped_option("mixup", name)
    if settings is None:
        raise UserError(f"mixup={name} is not a mixing method of this mmx; see `mmx --help` for the ones it has")
    return settings
