"""The CPU bug behind mmx's channels_last guard (mmx/layout.py), in PyTorch alone.

The weight gradient of a 1x1 convolution with stride 2, on a channels_last input with fewer than 8 channels,
runs oneDNN's ``jit_1x1:avx2`` kernel, which writes past its workspace (uxlfoundation/oneDNN#6035). With one
thread the heap is corrupted (glibc aborts: "free(): invalid next size", "double free or corruption") or the
process segfaults; with two threads the gradients are silently wrong. Each case runs in a child process,
compared with a float64 NCHW reference. On an AVX-512 CPU set ``ONEDNN_MAX_CPU_ISA=AVX2`` to take the path an
AVX2 CPU takes::

    ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=1 python scripts/onednn_channels_last_crash.py
    ONEDNN_MAX_CPU_ISA=AVX2 OMP_NUM_THREADS=2 python scripts/onednn_channels_last_crash.py

Seen with torch 2.14.1+cu130 (oneDNN 3.12.0) on a 2-core AMD EPYC with AVX-512, under
ONEDNN_MAX_CPU_ISA=AVX2 (20 backward passes a case): with one thread, 2 to 7 input channels corrupted the heap
(SIGABRT); with two threads, 2 and 3 channels hung and 4 to 7 gave gradients off by 3% to 90%; 1 and 8 or
more channels were correct to float rounding (1e-7), as was every NCHW input. Without the variable (oneDNN's
AVX-512 kernel) every case was correct.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

import torch


def one_case(channels: int, steps: int) -> float:
    """The largest relative error of the channels_last weight gradient over ``steps`` fresh batches."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, 2 * channels, kernel_size=1, stride=2, bias=False)
    reference = torch.nn.Conv2d(channels, 2 * channels, kernel_size=1, stride=2, bias=False).double()
    reference.weight.data.copy_(conv.weight.data)
    worst = 0.0
    for _ in range(steps):
        images = torch.randn(32, channels, 16, 16)
        conv.weight.grad = reference.weight.grad = None
        conv(images.contiguous(memory_format=torch.channels_last)).square().sum().backward()
        reference(images.double()).square().sum().backward()
        error = (conv.weight.grad.double() - reference.weight.grad).abs().max() / reference.weight.grad.abs().max()
        worst = max(worst, float(error))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, nargs="+", default=list(range(1, 10)), help="input channels to try")
    parser.add_argument("--steps", type=int, default=20, help="backward passes per case")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)  # the child process's one case
    args = parser.parse_args()
    if args.case is not None:
        print(one_case(args.case, args.steps))
        return 0
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "(unset)")
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, ATen CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, ONEDNN_MAX_CPU_ISA={isa}"
    )
    broken = 0
    for channels in args.channels:
        command = [sys.executable, __file__, "--case", str(channels), "--steps", str(args.steps)]
        try:
            child = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            outcome = "hung (killed after 60 s)"
        else:
            if child.returncode < 0:
                last = (child.stderr.strip().splitlines() or [""])[-1]
                outcome = f"crashed: {signal.Signals(-child.returncode).name} {last}".strip()
            elif child.returncode:
                outcome = f"failed: {(child.stderr.strip().splitlines() or ['?'])[-1]}"
            else:
                error = float(child.stdout.split()[-1])
                outcome = f"{'WRONG' if error > 1e-4 else 'ok'} (relative error {error:.1e})"
        broken += not outcome.startswith("ok")
        print(f"1x1 stride-2 convolution, {channels} input channels, channels_last backward: {outcome}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
