"""``mmx spectrum RUN_DIR... --layer K``: singular values of class-conditional hidden representations.

Section 3.2 of the paper argues that manifold mixup flattens each class's representations at the
mixed layer: they concentrate in fewer directions. Per class, the representations of its test
images at mixing point K (flattened) form a matrix whose singular values measure that; as in the
paper's Appendix G, mmx reports the largest one and the sum of the rest (averaged over classes),
writes ``spectrum.json`` into each run, and draws every run's spectrum in one figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mmx.errors import UserError
from mmx.evaluation import trained_run
from mmx.files import check_writable, write_json


def representations(run, layer: int, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """The flattened hidden states at mixing point ``layer`` of every test image, with their labels."""
    if not 0 <= layer < run.network.num_points:
        raise UserError(
            f"--layer {layer} is not a mixing point of {run.cfg.model.name} (0..{run.network.num_points - 1})"
        )
    pixels, labels = run.test_pixels()
    captured = []

    def capture(k, h):
        if k == layer:
            captured.append(h.flatten(1).double().cpu())
        return h

    with torch.no_grad():
        for x in pixels.split(batch_size):
            run.logits(x, at_point=capture)
    return torch.cat(captured), labels.cpu()


def class_spectra(
    hidden: torch.Tensor, labels: torch.Tensor, num_classes: int, center: bool = False
) -> list[list[float]]:
    """Singular values (descending) of each class's representation matrix (examples x features)."""
    spectra = []
    for c in range(num_classes):
        members = hidden[labels == c]
        if center:
            members = members - members.mean(dim=0)
        spectra.append(torch.linalg.svdvals(members).tolist() if len(members) else [])
    return spectra


def summarise(spectra: list[list[float]]) -> dict:
    """Mean over classes of the largest singular value, of the sum of the others, and of their ratio."""
    present = [s for s in spectra if s]
    largest = [s[0] for s in present]
    rest = [sum(s[1:]) for s in present]
    n = len(present)
    return {
        "largest": sum(largest) / n,
        "rest": sum(rest) / n,
        "rest_over_largest": sum(r / top for r, top in zip(rest, largest)) / n,
    }


def label(run) -> str:
    cfg = run.cfg
    settings = cfg.mixup
    alpha = (
        f" α={settings.alpha:g} points {list(settings.points)}"
        if settings.name != "none" and "alpha" in settings and "points" in settings
        else ""
    )
    return f"{cfg.mixup.name}{alpha} (seed {cfg.seed})"


def plot(entries: list[dict], path: Path, layer: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for entry in entries:
        spectra = [s for s in entry["spectra"] if s]
        depth = min(len(s) for s in spectra)
        mean = [sum(s[i] for s in spectra) / len(spectra) for i in range(depth)]
        axis.plot(range(1, depth + 1), mean, marker="o", markersize=3, label=entry["label"])
    axis.set(
        yscale="log",
        xlabel="singular value index",
        ylabel="singular value (mean over classes)",
        title=f"class-conditional spectra at mixing point {layer}",
    )
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def markdown(entries: list[dict]) -> str:
    lines = ["| run | largest singular value | sum of the rest | rest / largest |", "|---|---:|---:|---:|"]
    for e in entries:
        s = e["summary"]
        lines.append(f"| {e['label']} | {s['largest']:.2f} | {s['rest']:.2f} | {s['rest_over_largest']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mmx spectrum",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="run directories written by mmx train")
    parser.add_argument(
        "--layer", type=int, default=1, help="mixing point whose representations to analyse (default 1)"
    )
    parser.add_argument("--checkpoint", default="best", choices=trained_run.CHECKPOINTS)
    parser.add_argument("--center", action="store_true", help="subtract each class's mean first (variance spectrum)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="folder for spectrum.png and spectrum.md (default: no figure)")
    args = parser.parse_args(argv)

    if args.out:
        check_writable(Path(args.out), "--out")
    entries = []
    for run_dir in args.runs:
        run = trained_run.load(run_dir, args.checkpoint, args.device)
        hidden, labels = representations(run, args.layer)
        spectra = class_spectra(hidden, labels, run.data.num_classes, args.center)
        entry = {
            "run": str(run.run_dir),
            "label": label(run),
            "layer": args.layer,
            "checkpoint": args.checkpoint,
            "epoch": run.epoch,
            "centered": args.center,
            "dimensions": hidden.shape[1],
            "summary": summarise(spectra),
            "spectra": spectra,
        }
        write_json(run.run_dir / "spectrum.json", entry)
        entries.append(entry)
    print(markdown(entries), end="")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        plot(entries, out / "spectrum.png", args.layer)
        (out / "spectrum.md").write_text(
            f"Class-conditional singular values at mixing point {args.layer} ({args.checkpoint} checkpoints; "
            f"{'centred' if args.center else 'uncentred, as in the paper'}), mean over classes.\n\n{markdown(entries)}"
        )
        (out / "spectrum.json").write_text(
            json.dumps([{k: v for k, v in e.items() if k != "spectra"} for e in entries], indent=2) + "\n"
        )
        print(f"wrote {out / 'spectrum.png'}, spectrum.md and spectrum.json")
    return 0
