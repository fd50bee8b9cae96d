"""``make gpu-check``: prove each CUDA path of mmx correct on the GPU at hand, and measure it, in one call.

Each part runs in a process of its own under its own time limit, so a hang or a crash costs only
that part. The parts, in order:

1. Correctness on the embedded digits (seed 0):
   - ``graphs``: fp32, deterministic, manifold mixup at {0,1,2}, 3 epochs with an lr milestone:
     CUDA-graph replay against an eager run with the same fused, tensor-lr SGD (per-step losses and
     final parameters equal to 1e-6; every point captured; the first BatchNorm counted every step,
     so replays did run; the lr dropped at the milestone in both), and against the default eager
     step (epoch-1 loss within 1e-3 relative).
   - ``compile``: ``trainer.compile`` with and without graphs against eager: epoch-1 loss within
     1e-3 relative, one dynamo graph per mixing point, no fallback to eager.
   - ``bf16``: bf16 eager and graphs for 10 epochs reach 90% test accuracy; 20 steps (batches, draw,
     step) run under ``torch.cuda.set_sync_debug_mode("error")``: no host sync per step.
   - ``fp16``: fp16 eager with the gradient scaler stays finite and reaches 85% in 5 epochs; fp16
     with graphs is refused in one sentence.
   - ``resume``: a mid-epoch checkpoint (what ``trainer.checkpoint_every`` and a stop signal write),
     taken at step 5 of epoch 2 under CUDA graphs (fp32, deterministic), resumed in a new Trainer:
     final parameters equal to the uninterrupted run's within 1e-6; and the time one checkpoint takes
     (the state gathered from the device and serialised) for a full-width PreActResNet18.
2. Throughput with ``mmx bench``, one process per group (PreActResNet18 at batch 100 and 512,
   WRN-28-10 at 128), beside the project's targets.
3. ``family``: the mixing family (CutMix with half the batches unmixed, Feature CutMix at point 1, Noisy
   Feature Mixup at point 2, RegMixup), fp32 and deterministic, 2 epochs each: CUDA-graph replay against the
   fused eager step (per-step losses equal to 1e-6, every program captured), ``trainer.compile`` against eager
   (epoch-1 loss within 1e-3 relative, one dynamo graph per program), and 20 bf16 graph steps with no host sync.
4. A scan of every part's log for empty graphs, capture errors, recompile-limit messages and
   tracebacks.

It writes ``check.json``, ``summary.md`` and ``check.log`` (and the bench JSON) under
``results/gpu/<gpu-name>/`` and exits non-zero if anything failed. On a CPU it runs the parts a CPU
can run (compiled and fused-SGD steps against eager, at tiny width) and names the GPU parts it skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Messages that mean a CUDA path silently did the wrong thing, even when the part's own checks passed.
BAD_LOG = {
    "CUDA Graph is empty": "a captured graph recorded no work (its replays would do nothing)",
    "operation not permitted when stream is capturing": "something synchronised during a capture",
    "recompile_limit": "dynamo hit its recompile limit (compiled code fell back to eager)",
    "cache_size_limit": "dynamo hit its cache size limit (compiled code fell back to eager)",
    "Traceback (most recent call last)": "a traceback",
}
TARGETS = [  # (model, batch size, images/s): the performance issue's targets for an H100-class GPU
    ("preactresnet18", 100, 40_000),
    ("preactresnet18", 512, 100_000),
    ("wrn28_10", 128, 12_000),
]
MIXING_COST_TARGET = 0.03
BENCH_GROUPS = {
    "bench-r18-100": ["--models", "preactresnet18", "--batch-sizes", "100", "--paths", "reference,fast,graphs"],
    "bench-r18-512": ["--models", "preactresnet18", "--batch-sizes", "512", "--paths", "fast,graphs,compiled+graphs"],
    "bench-wrn-128": ["--models", "wrn28_10", "--batch-sizes", "128", "--paths", "reference,fast,graphs"],
}
# part -> (seconds allowed on a GPU, whether a CPU can run it)
PARTS = {
    "graphs": (90, True),
    "compile": (200, True),
    "bf16": (90, False),
    "fp16": (60, False),
    "resume": (90, True),
    **{name: (150 if "512" in name else 100, False) for name in BENCH_GROUPS},
    "family": (300, False),  # last: the paper's own paths and figures come first where time runs short
}


# ---------------------------------------------------------------------------------------------
# The parent: environment, one subprocess per part, the log scan, check.json and summary.md.


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="folder for the results (default: results/gpu/<gpu-name>)")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated subset of: " + ", ".join(PARTS))
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiply every part's time limit")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part in this process
    parser.add_argument("--result", help=argparse.SUPPRESS)  # internal: where that part writes its JSON
    args = parser.parse_args(argv)
    if args.part:
        return run_part(args.part, Path(args.result))

    missing = [name for name in ("hydra", "omegaconf", "antlr4") if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"gpu_check: error: {', '.join(missing)} not importable; bring hydra-core, omegaconf and "
            f"antlr4-python3-runtime as wheels and put them on PYTHONPATH (README, 'Checking a GPU')",
            file=sys.stderr,
        )
        return 2
    ensure_mmx_installed()
    import torch

    cuda = torch.cuda.is_available()
    environment = describe_environment(torch, cuda)
    out = Path(args.out) if args.out else REPO / "results" / "gpu" / slug(environment["device"])
    out.mkdir(parents=True, exist_ok=True)
    wanted = args.parts.split(",")
    unknown = set(wanted) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")

    started = time.perf_counter()
    results, log = {}, []
    for name in wanted:
        limit, cpu_ok = PARTS[name]
        if not cuda and not cpu_ok:
            results[name] = {"status": "skipped", "reason": "needs a CUDA device"}
            continue
        limit = limit * args.time_scale * (1 if cuda else 3)
        results[name], text = run_in_subprocess(name, out, limit)
        log.append(f"===== {name} ({results[name]['status']}, {results[name]['seconds']:.0f} s)\n{text}")
        print(
            f"{name:<14} {results[name]['status']:<8} {results[name]['seconds']:6.0f} s  "
            f"{results[name].get('reason', '')}",
            flush=True,
        )
    (out / "check.log").write_text("\n".join(log))
    report = {
        "environment": environment,
        "seconds": time.perf_counter() - started,
        "parts": results,
        "passed": all(r["status"] in ("passed", "skipped") for r in results.values()),
    }
    (out / "check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "summary.md").write_text(summary(report, out))
    print(
        f"{'passed' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s; wrote {out}/check.json, "
        f"summary.md and check.log"
    )
    return 0 if report["passed"] else 1


def ensure_mmx_installed() -> None:
    """mmx's configs ship as the package ``mmx.configs``: a plain checkout needs an (editable) install."""
    if importlib.util.find_spec("mmx") is not None and importlib.util.find_spec("mmx.configs") is not None:
        return
    print("installing mmx from this checkout (pip install --no-deps -e .)", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-e",
            str(REPO),
        ],
        check=True,
    )


def describe_environment(torch, cuda: bool) -> dict:
    env = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": platform.python_version(),
        "host": platform.node(),
    }
    if cuda:
        properties = torch.cuda.get_device_properties(0)
        env.update(
            device=properties.name,
            memory_gib=round(properties.total_memory / 2**30, 1),
            capability=f"{properties.major}.{properties.minor}",
            driver=driver_version(),
        )
    else:
        env.update(device="cpu", threads=torch.get_num_threads(), driver=None)
    return env


def driver_version() -> str | None:
    try:
        return (
            subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            .stdout.strip()
            .splitlines()[0]
        )
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-").lower() or "device"


def run_in_subprocess(name: str, out: Path, limit: float) -> tuple[dict, str]:
    """Run one part in a fresh interpreter under ``limit`` seconds; its result, and its log text."""
    result_path = out / f".{name}.json"
    result_path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MMX_BENCH_OUT": str(out)}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--part", name, "--result", str(result_path)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=limit,
        )
        text, returncode = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as timeout:
        text = _text(timeout.stdout) + _text(timeout.stderr)
        result = {"status": "failed", "reason": f"timed out after {limit:.0f} s"}
        return {**result, "seconds": time.perf_counter() - started, "log_problems": scan(text)}, text
    seconds = time.perf_counter() - started
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    result_path.unlink(missing_ok=True)
    problems = scan(text)
    if returncode != 0 and "status" not in result:
        result = {"status": "failed", "reason": f"exited with status {returncode}: {last_line(text)}"}
    elif problems and result.get("status") == "passed":
        result = {**result, "status": "failed", "reason": "log: " + "; ".join(problems)}
    return {**result, "seconds": seconds, "log_problems": problems}, text


def _text(data) -> str:
    return data.decode(errors="replace") if isinstance(data, bytes) else (data or "")


def scan(text: str) -> list[str]:
    return [meaning for pattern, meaning in BAD_LOG.items() if pattern in text]


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def summary(report: dict, out: Path) -> str:
    env = report["environment"]
    lines = [
        f"# mmx gpu-check on {env['device']}",
        "",
        f"{'PASSED' if report['passed'] else 'FAILED'} in {report['seconds']:.0f} s. torch {env['torch']}, "
        f"CUDA {env['cuda']}, cuDNN {env['cudnn']}, driver {env['driver']}, Python {env['python']}.",
        "",
        "| part | status | seconds | check | value | limit | ok |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for name, part in report["parts"].items():
        first = True
        for check in part.get("checks", []) or [{}]:
            head = (
                f"| {name} | {part['status']}{' (' + part['reason'] + ')' if part.get('reason') else ''} | "
                f"{part.get('seconds', 0):.0f} |"
                if first
                else "| | | |"
            )
            lines.append(
                f"{head} {check.get('name', '')} | {_fmt(check.get('value'))} | {_fmt(check.get('limit'))} | "
                f"{'' if not check else ('yes' if check['ok'] else 'NO')} |"
            )
            first = False
    bench = [r for part in report["parts"].values() for r in part.get("bench", [])]
    if bench:
        lines += [
            "",
            "## Throughput (mmx bench; images/s, median of 3 repeats)",
            "",
            "| model | regime | batch | path | precision | images/s | of peak | graphs |",
            "|---|---|---:|---|---|---:|---:|---|",
        ]
        for r in bench:
            graphs = (
                f"{r.get('compiled_graphs', r.get('captured_graphs', ''))}/{r.get('programs', '')}"
                if r["path"] not in ("reference", "fast")
                else ""
            )
            lines.append(
                f"| {r['model']} | {r['regime']} | {r['batch_size']} | {r['path']} | {r['precision']} | "
                f"{r['images_per_second']:,.0f} | {r.get('fraction_of_peak', float('nan')):.1%} | {graphs} |"
            )
        lines += [
            "",
            "## Against the targets (H100-class GPU)",
            "",
            "| model | batch | best path | images/s | target | met | mixing cost (same path) |",
            "|---|---:|---|---:|---:|---|---:|",
        ]
        for model, batch, target in TARGETS:
            rows = [r for r in bench if r["model"] == model and r["batch_size"] == batch and r["path"] != "reference"]
            if not rows:
                continue
            best = max(rows, key=lambda r: r["images_per_second"])
            plain = next((r for r in rows if r["path"] == best["path"] and r["regime"] == "none"), None)
            mixed = next((r for r in rows if r["path"] == best["path"] and r["regime"] == "manifold"), None)
            cost = plain["images_per_second"] / mixed["images_per_second"] - 1 if plain and mixed else float("nan")
            lines.append(
                f"| {model} | {batch} | {best['path']} ({best['regime']}) | {best['images_per_second']:,.0f} | "
                f"{target:,} | {'yes' if best['images_per_second'] >= target else 'no'} | {cost:+.1%} "
                f"({'< ' if cost < MIXING_COST_TARGET else '>= '}{MIXING_COST_TARGET:.0%}) |"
            )
    skipped = [name for name, part in report["parts"].items() if part["status"] == "skipped"]
    if skipped:
        lines += ["", f"Skipped (no CUDA device): {', '.join(skipped)}."]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


# ---------------------------------------------------------------------------------------------
# The parts, each run in its own process.


def run_part(name: str, result_path: Path) -> int:
    import torch

    cuda = torch.cuda.is_available()
    try:
        result = part_bench(name) if name in BENCH_GROUPS else PART_FUNCTIONS[name](cuda)
    except Exception as error:  # the traceback goes to the log; the result says which part broke
        import traceback

        traceback.print_exc()
        result = {
            "status": "failed",
            "reason": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
        }
    result_path.write_text(json.dumps(result, indent=2))
    return 0


def check(name: str, value, limit, ok: bool) -> dict:
    return {"name": name, "value": value, "limit": limit, "ok": bool(ok)}


def outcome(checks: list[dict], **extra) -> dict:
    return {"status": "passed" if all(c["ok"] for c in checks) else "failed", "checks": checks, **extra}


def digits_overrides(cuda: bool) -> list[str]:
    """Full-width PreActResNet18 on a GPU; a CPU gets width 8 (and never below: see tests/helpers)."""
    return ["dataset=digits", "trainer.progress=false", "seed=0"] + ([] if cuda else ["model.width=8"])


def train(overrides: list[str], epochs: int) -> dict:
    """Train digits for ``epochs`` through mmx's own Trainer; per-step losses, per-epoch lr, final state."""
    import torch

    from mmx.config import compose_train
    from mmx.trainer import Trainer

    trainer = Trainer(compose_train([*overrides, f"epochs={epochs}"]))
    steps, epoch_losses, lrs, accuracy = [], [], [], None
    for epoch in range(1, epochs + 1):
        lrs.append(trainer.lr)
        stats = trainer.train_epoch(epoch)
        steps += stats["step_losses"]
        epoch_losses.append(stats["train_loss"])
        accuracy = trainer.evaluate()["acc"]
    params = torch.cat([p.detach().float().flatten() for p in trainer.network.parameters()]).cpu()
    first_bn = next(m for m in trainer.network.modules() if isinstance(m, torch.nn.BatchNorm2d))
    return {
        "step_losses": steps,
        "epoch_losses": epoch_losses,
        "lrs": lrs,
        "test_acc": accuracy,
        "params": params,
        "bn_batches": int(first_bn.num_batches_tracked),
        # the captured programs as "0", "1", "2" (manifold mixup's point tuples (0,), ... joined; the check below)
        "graphs": sorted(",".join(map(str, p)) for p in trainer.step.graphs if p is not None),
        "programs": len(trainer.step.forwards),
        "trainer": trainer,
    }


def max_difference(a, b) -> float:
    import torch

    return float((torch.as_tensor(a, dtype=torch.float64) - torch.as_tensor(b, dtype=torch.float64)).abs().max())


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def part_graphs(cuda: bool) -> dict:
    """CUDA graphs against the same step run eagerly with the fused tensor-lr SGD, and against the default step.

    On a CPU: the fused tensor-lr SGD (what graphs replay) against the default foreach SGD.
    """
    base = [
        *digits_overrides(cuda),
        "mixup=manifold",
        "mixup.points=[0,1,2]",
        "trainer.precision=fp32",
        "trainer.deterministic=true",
        "schedule.milestones=[2]",
    ]
    eager = train(base, 3)
    fused = train([*base, "trainer.fused_sgd=true"], 3)
    checks = [
        check(
            "fused SGD vs default eager: epoch-1 loss, relative difference",
            relative(fused["epoch_losses"][0], eager["epoch_losses"][0]),
            1e-3,
            relative(fused["epoch_losses"][0], eager["epoch_losses"][0]) <= 1e-3,
        ),
        check("lr drops x0.1 at the milestone (fused)", fused["lrs"], "[lr, lr, lr/10]", _dropped(fused["lrs"])),
    ]
    if not cuda:
        return outcome(checks)
    graphs = train([*base, "trainer.cuda_graphs=true"], 3)
    total_steps = len(graphs["step_losses"])
    checks += [
        check(
            "graphs vs fused eager: per-step losses, max |difference|",
            max_difference(graphs["step_losses"], fused["step_losses"]),
            1e-6,
            max_difference(graphs["step_losses"], fused["step_losses"]) <= 1e-6,
        ),
        check(
            "graphs vs fused eager: final parameters, max |difference|",
            max_difference(graphs["params"], fused["params"]),
            1e-6,
            max_difference(graphs["params"], fused["params"]) <= 1e-6,
        ),
        check("every mixing point captured", graphs["graphs"], "['0', '1', '2']", graphs["graphs"] == ["0", "1", "2"]),
        check(
            "first BatchNorm counted every step (replays ran)",
            graphs["bn_batches"],
            total_steps,
            graphs["bn_batches"] == total_steps,
        ),
        check("lr drops x0.1 at the milestone (graphs)", graphs["lrs"], "[lr, lr, lr/10]", _dropped(graphs["lrs"])),
        check(
            "graphs vs default eager: epoch-1 loss, relative difference",
            relative(graphs["epoch_losses"][0], eager["epoch_losses"][0]),
            1e-3,
            relative(graphs["epoch_losses"][0], eager["epoch_losses"][0]) <= 1e-3,
        ),
    ]
    smoke = smoke_run([*digits_overrides(cuda), "mixup=manifold", "mixup.points=[0,1,2]", "trainer.cuda_graphs=true"])
    checks.append(check("smoke run with graphs: points captured", smoke, "[[0], [1], [2]]", smoke == [[0], [1], [2]]))
    return outcome(checks, steps=total_steps)


def smoke_run(overrides: list[str]) -> list:
    """A ``smoke=true`` run through ``mmx train``; the sets of mixing points it captured."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(
            [sys.executable, "-m", "mmx", "train", *overrides, "smoke=on", f"hydra.run.dir={folder}/run"],
            check=True,
            cwd=folder,
        )
        return json.loads(Path(folder, "run", "summary.json").read_text())["captured_programs"]


def _dropped(lrs: list[float]) -> bool:
    """Epochs 1 and 2 at the base lr, epoch 3 (after the milestone at 2) at a tenth of it."""
    return lrs[0] == lrs[1] and abs(lrs[2] / lrs[1] - 0.1) < 1e-6


def part_compile(cuda: bool) -> dict:
    """torch.compile (and compile + graphs on a GPU) against eager: same epoch-1 loss, one graph per point."""
    base = [*digits_overrides(cuda), "trainer.precision=fp32", "trainer.deterministic=true", "schedule.milestones=[]"]
    # A CPU compiles slowly: one mixing point there, three on a GPU.
    base += ["mixup=manifold", "mixup.points=[0,1,2]"] if cuda else ["mixup=input"]
    eager = train(base, 1)
    checks = []
    variants = {"compile": ["trainer.compile=true"]}
    if cuda:
        variants["compile+graphs"] = ["trainer.compile=true", "trainer.cuda_graphs=true"]
    from mmx.step import compiled_graphs

    for name, extra in variants.items():
        compiled = train([*base, *extra], 1)
        graphs = compiled_graphs()
        checks += [
            check(
                f"{name} vs eager: epoch-1 loss, relative difference",
                relative(compiled["epoch_losses"][0], eager["epoch_losses"][0]),
                1e-3,
                relative(compiled["epoch_losses"][0], eager["epoch_losses"][0]) <= 1e-3,
            ),
            check(
                f"{name}: dynamo graphs per program (no breaks, no fallback)",
                f"{graphs}/{compiled['programs']}",
                "1 per program",
                graphs == compiled["programs"],
            ),
        ]
    return outcome(checks)


# The mixing family as gpu-check trains it: each method's programs kept few (one mixing point, or CutMix's two
# programs: mixed and unmixed), so that inductor compiles five graphs in all.
FAMILY = {
    "cutmix": ["mixup=cutmix", "mixup.probability=0.5"],
    "manifold_cutmix": ["mixup=manifold_cutmix", "mixup.points=[1]"],
    "nfm": ["mixup=nfm", "mixup.points=[2]"],
    "regmixup": ["mixup=regmixup"],
}


def part_family(cuda: bool) -> dict:
    """Each method of the mixing family under CUDA graphs and torch.compile against its eager step, and with no host
    sync in a bf16 graph step."""
    from mmx.step import compiled_graphs

    base = [*digits_overrides(cuda), "trainer.precision=fp32", "trainer.deterministic=true", "schedule.milestones=[]"]
    checks = []
    for name, mixing in FAMILY.items():
        fused = train([*base, *mixing, "trainer.fused_sgd=true"], 2)
        graphs = train([*base, *mixing, "trainer.cuda_graphs=true"], 2)
        programs = sorted(",".join(map(str, p)) for p in graphs["trainer"].mixer.programs)
        difference = max_difference(graphs["step_losses"], fused["step_losses"])
        checks += [
            check(
                f"{name}: graphs vs fused eager, per-step losses, max |difference|",
                difference,
                1e-6,
                difference <= 1e-6,
            ),
            check(f"{name}: every program captured", graphs["graphs"], programs, graphs["graphs"] == programs),
        ]
        eager = train([*base, *mixing], 1)
        compiled = train([*base, *mixing, "trainer.compile=true"], 1)
        made = compiled_graphs()
        gap = relative(compiled["epoch_losses"][0], eager["epoch_losses"][0])
        checks += [
            check(f"{name}: compile vs eager, epoch-1 loss, relative difference", gap, 1e-3, gap <= 1e-3),
            check(
                f"{name}: compile, dynamo graphs per program",
                f"{made}/{compiled['programs']}",
                "1 per program",
                made == compiled["programs"],
            ),
        ]
        bf16 = train([*digits_overrides(cuda), *mixing, "trainer.precision=bf16", "trainer.cuda_graphs=true"], 1)
        steps = steps_without_sync(bf16["trainer"], 20)
        checks.append(check(f"{name}: bf16 graph steps without a host sync", steps, 20, steps == 20))
    return outcome(checks)


def steps_without_sync(trainer, limit: int) -> int:
    """Training steps (batches, draw, step) run under ``torch.cuda.set_sync_debug_mode("error")``, up to ``limit``:
    fewer when one of them waited for the host (it raises, and the part fails with the traceback)."""
    import torch

    steps = 0
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for images, labels in trainer.batches:
            trainer.step(images, labels, trainer.mixer.draw(len(images)))
            steps += 1
            if steps == limit:
                break
    finally:
        torch.cuda.set_sync_debug_mode(0)
    return steps


def part_bf16(cuda: bool) -> dict:
    """bf16 eager and graphs learn digits; a step performs no host sync."""
    base = [*digits_overrides(cuda), "trainer.precision=bf16", "schedule.milestones=[6]"]
    checks = []
    for name, extra in (("eager", []), ("graphs", ["trainer.cuda_graphs=true"])):
        run = train([*base, *extra], 10)
        checks.append(
            check(f"bf16 {name}: test accuracy after 10 epochs (%)", run["test_acc"], 90, run["test_acc"] >= 90)
        )
        steps = steps_without_sync(run["trainer"], 20)
        checks.append(check(f"bf16 {name}: steps without a host sync", steps, 20, steps == 20))
    return outcome(checks)


def part_fp16(cuda: bool) -> dict:
    """fp16 with the gradient scaler learns; fp16 with graphs is refused in one sentence."""
    from mmx.errors import UserError

    run = train([*digits_overrides(cuda), "trainer.precision=fp16", "schedule.milestones=[4]"], 5)
    finite = all(map(lambda v: v == v and abs(v) != float("inf"), run["step_losses"]))
    checks = [
        check("fp16 eager: every step's loss finite", finite, True, finite),
        check("fp16 eager: test accuracy after 5 epochs (%)", run["test_acc"], 85, run["test_acc"] >= 85),
    ]
    try:
        train([*digits_overrides(cuda), "trainer.precision=fp16", "trainer.cuda_graphs=true"], 1)
        refused = "accepted"
    except UserError as error:
        refused = str(error)
    checks.append(
        check(
            "fp16 with graphs refused in one sentence",
            refused[:90],
            "cannot replay fp16",
            "cannot replay fp16" in refused and "\n" not in refused,
        )
    )
    return outcome(checks)


def part_resume(cuda: bool) -> dict:
    """A checkpoint inside epoch 2 resumes, in a new Trainer, to the uninterrupted run's parameters (under CUDA graphs
    on a GPU); and what one checkpoint of a full-width PreActResNet18 costs: state_dict() and torch.save, timed."""
    import io

    import torch

    from mmx.config import compose_train
    from mmx.trainer import Trainer

    base = [*digits_overrides(cuda), "trainer.precision=fp32", "trainer.deterministic=true", "schedule.milestones=[1]"]
    cfg = compose_train([*base, "epochs=2", *(["trainer.cuda_graphs=true"] if cuda else [])])
    full = Trainer(cfg)
    for epoch in (1, 2):
        full.train_epoch(epoch)

    class Paused(Exception):
        pass

    taken = {}

    def pause_at_step_5(running) -> None:
        if running.done == 5:
            started = time.perf_counter()
            buffer = io.BytesIO()
            torch.save(stopped.state_dict(), buffer)
            taken.update(seconds=time.perf_counter() - started, data=buffer.getvalue())
            raise Paused

    stopped = Trainer(cfg)
    stopped.train_epoch(1)
    try:
        stopped.train_epoch(2, after_step=pause_at_step_5)
    except Paused:
        pass
    state = torch.load(io.BytesIO(taken["data"]), map_location="cpu", weights_only=True)
    resumed = Trainer(cfg, state=state)
    resumed.train_epoch(2)
    difference = max_difference(
        torch.cat([p.detach().float().flatten() for p in full.network.parameters()]).cpu(),
        torch.cat([p.detach().float().flatten() for p in resumed.network.parameters()]).cpu(),
    )
    checks = [
        check("checkpoint at epoch 2, step 5", state["partial"]["step"], 5, state["partial"]["step"] == 5),
        check("resumed vs uninterrupted: final parameters, max |difference|", difference, 1e-6, difference <= 1e-6),
    ]
    # The cost on the real network (full width even on a CPU: its size is what the checkpoint costs)
    wide = Trainer(compose_train(["dataset=digits", "trainer.progress=false", "epochs=1"]))
    costs = []
    for _ in range(5):
        wide.train_epoch(1, max_steps=2, after_step=lambda running: costs.append(checkpoint_cost(wide)))
    seconds, size = sorted(costs)[len(costs) // 2]
    return outcome(checks, preactresnet18_checkpoint_seconds=seconds, preactresnet18_checkpoint_mb=size)


def checkpoint_cost(trainer) -> tuple[float, float]:
    """One mid-epoch checkpoint's cost before the disk: (seconds to gather the state off the device and serialise
    it, its size in MB)."""
    import io

    import torch

    started = time.perf_counter()
    buffer = io.BytesIO()
    torch.save(trainer.state_dict(), buffer)
    return time.perf_counter() - started, len(buffer.getvalue()) / 2**20


def part_bench(name: str) -> dict:
    """One ``mmx bench`` group in this process; its rows come back in the result."""
    from mmx.bench import main as bench

    out = Path(os.environ.get("MMX_BENCH_OUT", ".")) / f"{name}.json"
    code = bench(
        [
            *BENCH_GROUPS[name],
            "--regimes",
            "none,manifold",
            "--steps",
            "30",
            "--warmup",
            "40",
            "--repeats",
            "3",
            "--out",
            str(out),
        ]
    )
    rows = json.loads(out.read_text())["results"]
    checks = [
        check(
            f"{r['path']} {r['regime']}: graphs per program",
            f"{r.get('compiled_graphs', r.get('captured_graphs'))}/{r['programs']}",
            "1 per program",
            r.get("compiled_graphs" if "compiled" in r["path"] else "captured_graphs") == r["programs"],
        )
        for r in rows
        if r["path"] not in ("reference", "fast")
    ]
    return outcome([check("mmx bench exit status", code, 0, code == 0), *checks], bench=rows)


PART_FUNCTIONS = {
    "graphs": part_graphs,
    "compile": part_compile,
    "bf16": part_bf16,
    "fp16": part_fp16,
    "resume": part_resume,
    "family": part_family,
}

if __name__ == "__main__":
    sys.exit(main())
