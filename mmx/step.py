"""One training step (forward, loss, backward, update), run eagerly, compiled, or replayed from CUDA graphs.

A mixing method's draw chooses which code runs (its ``program``: in manifold mixup, the mixing points), so the
compiled and captured forms keep one graph per program a step can draw: ``torch.compile`` specialises one graph per
program, and ``trainer.cuda_graphs`` captures the whole step once per program. Everything that changes from step to
step (images, labels, the draw's tensors such as lam and the permutation, the learning rate) is a device tensor, so a
captured step replays with no host sync. The step passes a draw through without knowing its fields
(:mod:`mmx.mixing.base`).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Hashable

import torch

from mmx.errors import UserError
from mmx.mixing import Draw, MixingMethod

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
EAGER_STEPS_BEFORE_CAPTURE = 3  # per program: cuDNN autotuning, lazy state and compilation happen here


def autocast(device: torch.device, precision: str):
    if precision in AUTOCAST_DTYPES:
        return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
    return contextlib.nullcontext()


def check_graph_settings(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    precision: str,
    compile_mode: str | None,
) -> None:
    """What a CUDA-graph step cannot replay, refused in one sentence before anything is captured."""
    if compile_mode in ("reduce-overhead", "max-autotune"):
        raise UserError(
            f"trainer.compile_mode={compile_mode} makes CUDA graphs of its own, which cannot nest in "
            f"trainer.cuda_graphs; use trainer.compile_mode=default or drop trainer.cuda_graphs"
        )
    if not isinstance(optimizer, torch.optim.SGD):
        raise UserError(
            f"trainer.cuda_graphs=true replays torch.optim.SGD updates only, not {type(optimizer).__name__}; "
            f"use optim=sgd or drop trainer.cuda_graphs"
        )
    if not isinstance(optimizer.param_groups[0]["lr"], torch.Tensor):
        raise UserError(
            "trainer.cuda_graphs=true needs the fused SGD that reads its lr from a device tensor (a graph "
            "would freeze a Python lr); drop trainer.fused_sgd=false"
        )
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        raise UserError(
            "trainer.cuda_graphs=true runs in one process, but this run has several; drop it under "
            "torchrun (trainer.compile=true works there)"
        )
    if precision == "fp16":
        raise UserError(
            "trainer.cuda_graphs=true cannot replay fp16's loss scaling (it syncs with the host every "
            "step); use trainer.precision=bf16 or fp32"
        )
    if device.type != "cuda":
        raise UserError(
            f"trainer.cuda_graphs=true needs a CUDA device, but this run is on {device.type}; drop it "
            f"(trainer.compile=true works on the CPU)"
        )


def capturable_sgd(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Make an SGD optimiser fused, with its learning rate in a device tensor (``trainer.fused_sgd``).

    The foreach SGD reads the learning rate as a Python number, which a CUDA graph would freeze at
    its capture-time value; the fused kernel reads it from a device tensor instead, which the
    schedulers update in place (``fill_``), so the schedule keeps working under replay. The fused
    update equals the foreach one up to float rounding (about 1e-7 relative), not bit for bit.
    """
    if not isinstance(optimizer, torch.optim.SGD):
        raise UserError(
            f"trainer.fused_sgd fuses torch.optim.SGD only, not {type(optimizer).__name__}; use optim=sgd "
            f"or set trainer.fused_sgd=false"
        )
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
        group["fused"], group["foreach"] = True, False


def reset_compiler(programs: int) -> None:
    """Fresh dynamo caches sized for ``programs`` graphs of one step function, failing loudly when full.

    Every program compiles the same code object, so dynamo counts programs as recompiles of one
    frame: left to its defaults, a second run in the same process (a sweep, ``mmx bench``) fills the
    cache and silently falls back to eager. A reset per step object, a limit of one entry per
    program, and an error instead of the fallback keep every compiled figure compiled.
    """
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()  # dynamo's statistics outlive its caches
    torch._dynamo.config.recompile_limit = max(8, programs)
    torch._dynamo.config.fail_on_recompile_limit_hit = True


def compiled_graphs() -> int:
    """Graphs dynamo has compiled since the last :func:`reset_compiler` (one per program when none break)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class TrainStep:
    """``step(images, labels, draw) -> (loss, correct)``, both device scalars, never read on the host
    (consume them before the next step: a replayed graph overwrites its outputs). ``correct`` counts
    predictions equal to the original (unmixed) labels, as the public code counts training accuracy.

    ``compile``: ``torch.compile`` the forward and loss (backward is compiled with it by AOTAutograd),
    one graph per program (set of mixing points), ``dynamic=False``: training shapes never change.
    ``cuda_graphs``: after a few eager steps per program, capture forward, backward and the
    optimiser update of that program in one CUDA graph and replay it from then on. A replay is the
    same computation as an eager step *with the fused, tensor-lr SGD* (:func:`capturable_sgd`,
    which ``cuda_graphs`` requires); against the default foreach SGD it differs by float rounding.
    ``method`` is the run's mixing method: its programs size the compiler's cache, and its
    :meth:`~mmx.mixing.MixingMethod.forward_loss` is what each program's step computes.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        loss_fn: Callable,
        num_classes: int,
        device: torch.device,
        precision: str,
        *,
        compile: bool = False,
        compile_mode: str = "default",
        compile_backend: str = "inductor",
        cuda_graphs: bool = False,
        method: MixingMethod,
    ):
        self.model, self.optimizer, self.scaler = model, optimizer, scaler
        self.method = method
        self.loss_fn, self.num_classes = loss_fn, num_classes
        self.device, self.precision = device, precision
        self.compile = dict(mode=compile_mode, backend=compile_backend, dynamic=False) if compile else None
        if cuda_graphs:
            check_graph_settings(model, optimizer, device, precision, compile_mode if compile else None)
        if compile:
            reset_compiler(len(method.programs))
        self.cuda_graphs = cuda_graphs
        self.forwards: dict[Hashable, Callable] = {}
        self.graphs: dict[Hashable, _CapturedStep] = {}
        self.eager_steps: dict[Hashable, int] = {}
        # Warm-up and capture run on a side stream of the training device (not of the current device).
        self.side_stream = torch.cuda.Stream(device) if cuda_graphs else None
        # One memory pool for every point's graph: only the outputs outlive a replay (parameters,
        # optimiser state and the static inputs live outside the pool), so graphs replayed in any
        # order can share the temporaries of forward and backward instead of reserving them per point.
        self.pool = torch.cuda.graph_pool_handle() if cuda_graphs else None

    def forward_for(self, program: Hashable, keys: tuple[str, ...]) -> Callable:
        """The forward+loss of one program, compiled once if asked: ``(images, labels, *tensors)``, the draw's tensors
        in the order of ``keys`` (a program always draws the same ones)."""
        if program not in self.forwards:

            def forward(images, hook):
                with autocast(self.device, self.precision):
                    return self.model(images, at_point=hook)

            def forward_loss(images, labels, *values):
                tensors = dict(zip(keys, values))
                loss, logits = self.method.forward_loss(
                    forward, images, labels, program, tensors, self.loss_fn, self.num_classes
                )
                return loss, (logits.argmax(dim=1) == labels).sum()

            self.forwards[program] = torch.compile(forward_loss, **self.compile) if self.compile else forward_loss
        return self.forwards[program]

    def captured(self, programs) -> bool:
        """Whether every one of ``programs`` replays from a graph (always true without CUDA graphs)."""
        return not self.cuda_graphs or all(p in self.graphs for p in programs)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, draw: Draw):
        program, keys = draw.program, tuple(sorted(draw.tensors))
        inputs = (images, labels, *(draw.tensors[key] for key in keys))
        if program in self.graphs:
            return self.graphs[program].replay(*inputs)
        if self.cuda_graphs and self.eager_steps.get(program, 0) >= EAGER_STEPS_BEFORE_CAPTURE:
            self.graphs[program] = _CapturedStep(self, program, keys, inputs)
            return self.graphs[program].replay(*inputs)
        self.eager_steps[program] = self.eager_steps.get(program, 0) + 1
        with _on_stream(self.side_stream) if self.cuda_graphs else contextlib.nullcontext():
            return self.eager(program, keys, inputs)

    def eager(self, program: Hashable, keys: tuple[str, ...], inputs: tuple[torch.Tensor, ...]):
        loss, correct = self.forward_for(program, keys)(*inputs)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), correct


class _CapturedStep:
    """One program's whole step in a CUDA graph, fed through static input buffers.

    Gradients are allocated inside the shared graph pool and written, not accumulated, on every
    replay. After a replay, ``p.grad`` holds the tensors of the *last captured* graph, not
    necessarily of the graph just replayed: read gradients only in eager steps.
    """

    def __init__(self, step: TrainStep, program: Hashable, keys: tuple[str, ...], inputs: tuple[torch.Tensor, ...]):
        self.inputs = [t.clone() for t in inputs]
        self.graph = torch.cuda.CUDAGraph()
        step.optimizer.zero_grad(set_to_none=True)
        # thread_local: other threads (a DataLoader's pin-memory thread) may use CUDA during the capture.
        with torch.cuda.graph(self.graph, pool=step.pool, stream=step.side_stream, capture_error_mode="thread_local"):
            loss, correct = step.forward_for(program, keys)(*self.inputs)
            loss.backward()
            step.optimizer.step()
        self.outputs = (loss.detach(), correct)

    def replay(self, *inputs):
        """Run the step on ``inputs``; the returned (loss, correct) are the graph's own output
        buffers, valid until the next replay of any graph (the trainer consumes them at once)."""
        for static, new in zip(self.inputs, inputs):
            static.copy_(new, non_blocking=True)
        self.graph.replay()
        return self.outputs


@contextlib.contextmanager
def _on_stream(stream: torch.cuda.Stream):
    """Warm-up steps before a capture run on a side stream, as CUDA-graph capture requires."""
    stream.wait_stream(torch.cuda.current_stream(stream.device))
    with torch.cuda.stream(stream):
        yield
    torch.cuda.current_stream(stream.device).wait_stream(stream)
