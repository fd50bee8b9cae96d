"""``mmx bench``: training-step throughput of mmx's path against a re-creation of the public code's.

Both paths train the same network on the same device in one process. The reference path is the
public code's way: fp32, eager, a torchvision DataLoader with PIL transforms (RandomCrop(32,
padding=4), RandomHorizontalFlip, ToTensor, Normalize) and 2 workers, BCE of the softmax, the
mixing method's own draw and loss run eagerly. The other paths are mmx's own training step
(``mmx.trainer.Trainer.train_epoch``): uint8 data on the device, augmentation in batch, bf16 autocast and
channels_last on GPUs; eager (``fast``), ``compiled`` (``trainer.compile``), ``graphs`` (``trainer.cuda_graphs``)
or both. Each
timing is the median of repeats after a warm-up (long enough for every mixing point's graph to be
captured), with the device synchronised.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from mmx.config import compose_train
from mmx.files import check_writable
from mmx.flops import TRAIN_STEP_FORWARDS, forward_flops
from mmx.layout import in_layout
from mmx.losses import softmax_bce
from mmx.parts import device_name, resolve_device
from mmx.step import compiled_graphs
from mmx.trainer import Trainer


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_tflops(device: torch.device) -> float:
    """Measured dense matmul rate: bf16 on GPUs, fp32 on CPUs, the yardstick for 'of peak'.

    'of peak' is model FLOPs per second over this rate; convolution algorithms that do less
    arithmetic than the model's FLOPs (Winograd) can take it past 100%, as seen on CPUs.
    """
    n, dtype = (8192, torch.bfloat16) if device.type == "cuda" else (2048, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize(device)
    repeats = 20 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e12


class PilImages(Dataset):
    """uint8 images served as PIL images through transforms, as torchvision's CIFAR10 serves them."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(
            Image.fromarray(self.images[i].squeeze(-1) if self.images.shape[-1] == 1 else self.images[i])
        ), self.labels[i]


def reference_steps(trainer: Trainer, cfg, loader_iter, steps: int) -> float:
    """The public code's step, ``steps`` times, mixing as the run's method does; returns seconds (device
    synchronised)."""
    network, optimizer, device, method = trainer.network, trainer.optimizer, trainer.device, trainer.mixer
    network.train()
    start = time.perf_counter()
    for _ in range(steps):
        images, labels = next(loader_iter)
        images, labels = in_layout(images.to(device), channels_last=False), labels.to(device)
        draw = method.draw(len(images))
        loss, _ = method.forward_loss(
            lambda x, hook: network(x, at_point=hook),
            images,
            labels,
            draw.program,
            draw.tensors,
            softmax_bce,
            trainer.data.num_classes,
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def endless(loader):
    while True:
        yield from loader


# Every path but the reference is mmx's own training step under different trainer switches.
PATHS = {
    "reference": ["trainer.precision=fp32", "trainer.channels_last=false", "loss=bce"],
    "fast": [],
    "compiled": ["trainer.compile=true"],
    "graphs": ["trainer.cuda_graphs=true"],
    "compiled+graphs": ["trainer.compile=true", "trainer.cuda_graphs=true"],
}


def bench_one(model: str, regime: str, batch: int, path: str, args) -> dict:
    """Median images/s of one (model, regime, batch size, path).

    Compiled paths also report how many graphs dynamo compiled and how many programs (mixing
    points) the step ran: equal when every point compiled to one graph without breaks.
    """
    size = max(args.steps, args.warmup) * batch  # an epoch long enough for the warm-up and for each repeat
    overrides = [
        f"model={model}",
        f"mixup={regime}",
        f"batch_size={batch}",
        "dataset=synthetic",
        f"dataset.source.train_size={size}",
        f"dataset.source.test_size={batch}",
        f"dataset.image_size={args.image_size}",
        f"trainer.device={args.device}",
        "trainer.progress=false",
        *PATHS[path],
        *args.override,
    ]
    cfg = compose_train(overrides)
    trainer = Trainer(cfg)
    seconds, programs = [], {}
    if path != "reference":
        warmup = len(trainer.train_epoch(0, max_steps=args.warmup)["step_losses"]) if args.warmup else 0
        for _ in range(args.repeats):
            seconds.append(trainer.train_epoch(0, max_steps=args.steps)["train_seconds"])
        programs = {
            "warmup_steps": warmup,
            "programs": len(trainer.step.forwards),
            "captured_graphs": len(trainer.step.graphs),
            "compiled_graphs": compiled_graphs() if cfg.trainer.compile else 0,
        }
    else:
        transform = transforms.Compose(
            [
                transforms.RandomCrop(args.image_size, padding=cfg.dataset.crop_padding),
                transforms.RandomHorizontalFlip(),
                transforms.ToTensor(),
                transforms.Normalize(cfg.dataset.mean, cfg.dataset.std),
            ]
        )
        images = trainer.data.train_images.cpu()
        loader = DataLoader(
            PilImages(images, trainer.data.train_labels.cpu(), transform),
            batch_size=batch,
            shuffle=True,
            num_workers=args.workers,
            pin_memory=trainer.device.type == "cuda",
            drop_last=True,
            persistent_workers=args.workers > 0,
        )
        batches = endless(loader)
        reference_steps(trainer, cfg, batches, args.warmup)
        for _ in range(args.repeats):
            seconds.append(reference_steps(trainer, cfg, batches, args.steps))
    flops = forward_flops(
        cfg.model, trainer.data.num_classes, (trainer.data.channels, args.image_size, args.image_size)
    )
    median = statistics.median(seconds)
    result = {
        "model": model,
        "regime": regime,
        "batch_size": batch,
        "path": path,
        "precision": trainer.precision,
        "images_per_second": args.steps * batch / median,
        "seconds_per_step": median / args.steps,
        # a method that passes each image through the network twice (regmixup) costs twice the work per image
        "train_gflop_per_image": TRAIN_STEP_FORWARDS * trainer.mixer.forward_passes * flops / 1e9,
        "repeats": [args.steps * batch / t for t in seconds],
        **programs,
    }
    release(trainer)
    return result


def release(trainer: Trainer) -> None:
    """Free one configuration's model, data, graphs and compiled code before the next is built."""
    device = trainer.device
    trainer.__dict__.clear()
    gc.collect()
    torch._dynamo.reset()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def table(results: list[dict]) -> str:
    """images/s, fraction of peak, fast/reference ratio, and the step-time cost of mixing over no mixing and over
    input mixup (what a method adds to the cheapest mixing, e.g. regmixup's second pass)."""

    def twin(r, **changes):
        key = {**{k: r[k] for k in ("model", "regime", "batch_size", "path")}, **changes}
        return next((x for x in results if all(x[k] == v for k, v in key.items())), None)

    def cost(r, regime: str) -> str:
        other = twin(r, regime=regime)
        if r["regime"] in ("none", regime) or other is None:
            return ""
        return f"{other['images_per_second'] / r['images_per_second'] - 1:+.1%}"

    lines = [
        f"{'model':<15} {'regime':<15} {'batch':>5} {'path':<15} {'precision':<9} {'images/s':>10} "
        f"{'of peak':>7} {'fast/ref':>8} {'vs none':>8} {'vs input':>8} {'graphs':>7}"
    ]
    for r in results:
        reference = twin(r, path="reference")
        ratio = (
            f"{r['images_per_second'] / reference['images_per_second']:.2f}x"
            if r["path"] != "reference" and reference
            else ""
        )
        # compiled graphs / programs run (or CUDA graphs captured / programs): equal when nothing broke or fell back
        graphs = (
            f"{r['compiled_graphs']}/{r['programs']}"
            if "compiled" in r["path"]
            else f"{r['captured_graphs']}/{r['programs']}"
            if r["path"] == "graphs"
            else ""
        )
        lines.append(
            f"{r['model']:<15} {r['regime']:<15} {r['batch_size']:>5} {r['path']:<15} {r['precision']:<9} "
            f"{r['images_per_second']:>10,.0f} {r['fraction_of_peak']:>7.1%} {ratio:>8} {cost(r, 'none'):>8} "
            f"{cost(r, 'input'):>8} {graphs:>7}"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mmx bench", description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--models", default="preactresnet18", help="comma-separated model configs")
    parser.add_argument("--regimes", default="none,manifold", help="comma-separated mixup configs")
    parser.add_argument("--batch-sizes", default="100", help="comma-separated batch sizes")
    parser.add_argument(
        "--paths", default="reference,fast", help=f"comma-separated, from {', '.join(PATHS)} (graphs need a GPU)"
    )
    parser.add_argument("--steps", type=int, default=50, help="training steps per timed repeat")
    parser.add_argument(
        "--warmup",
        type=int,
        default=40,
        help="untimed steps first (graph paths capture each mixing point after 3 eager steps)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the median is reported")
    parser.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers of the reference path (public code: 2)"
    )
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench.json", help="where to write the JSON results")
    parser.add_argument("override", nargs="*", help="extra Hydra overrides for both paths, e.g. model.width=8")
    args = parser.parse_args(argv)
    for name in ("steps", "repeats", "warmup"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be at least {0 if name == 'warmup' else 1} (got {getattr(args, name)})")
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        parser.error(f"unknown path(s) {', '.join(sorted(unknown))}; choose from {', '.join(PATHS)}")
    check_writable(Path(args.out).resolve().parent, "--out")

    results = [
        bench_one(model, regime, int(batch), path, args)
        for model in args.models.split(",")
        for regime in args.regimes.split(",")
        for batch in args.batch_sizes.split(",")
        for path in args.paths.split(",")
    ]
    device = resolve_device(args.device)
    peak = matmul_peak_tflops(device)
    for r in results:
        r["fraction_of_peak"] = r["images_per_second"] * r["train_gflop_per_image"] / (peak * 1e3)
    name = device_name(device)
    print(
        f"device: {name}; measured matmul peak {peak:.1f} TFLOP/s "
        f"({'bf16' if device.type == 'cuda' else 'fp32'}); torch {torch.__version__}"
    )
    print(table(results))
    Path(args.out).write_text(
        json.dumps(
            {
                "device": name,
                "peak_tflops": peak,
                "torch": torch.__version__,
                "steps": args.steps,
                "repeats": args.repeats,
                "results": results,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")
    return 0
