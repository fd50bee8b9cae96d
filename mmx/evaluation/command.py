"""mmx eval run=RUN_DIR [KEY=VALUE ...]: calibration, adversarial and deformation robustness, OOD detection."""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from importlib import resources

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue
from tqdm import tqdm

from mmx.checks import check_finite
from mmx.config import compose_dataset, quote_paths, shipped_option
from mmx.errors import UserError
from mmx.evaluation import attacks, calibration, deformations, excess, ood, temperature, trained_run
from mmx.metrics import classification_metrics, scores
from mmx.parts import load_data, show_progress
from mmx.run_dir import RunDir

log = logging.getLogger("mmx")


def accuracy_under(run, pixels, labels, batch_size: int, change) -> float:
    """Test accuracy (%) after ``change(images, labels)`` is applied batch by batch."""
    correct = torch.zeros((), device=run.device)
    for x, y in zip(pixels.split(batch_size), labels.split(batch_size)):
        changed = change(x, y)
        with torch.no_grad():
            correct += (run.logits(changed).argmax(dim=1) == y).sum()
    return float(correct) / len(labels) * 100


def logits_of(run, pixels, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([run.logits(x) for x in pixels.split(batch_size)])


def paired_ood_set(dataset: DictConfig) -> str:
    """``ood.set=auto``: the OOD set the dataset's YAML names (``ood``), or noise. A run trained before datasets named
    one is paired as its dataset's YAML pairs it now."""
    if "ood" not in dataset:
        dataset = shipped_option("dataset", dataset.name) or {}
    return dataset.get("ood") or "noise"


def ood_pixels(run, name: str, count: int | None, generator: torch.Generator) -> tuple[torch.Tensor, list | None]:
    """The OOD test images in [0, 1], shaped like the run's own test images, and the size they were resized from.

    A set with the run's number of channels but another size is resized to the run's (bilinear, antialiased):
    mnist5k's 28x28 digits against a digits run's 8x8, say. Other channel counts are refused, since there is no
    one right way to turn colour into grey or back.
    """
    shape = run.data.test_images.shape[1:]
    if name == "noise":
        n = count or run.data.test_size
        return torch.rand((n, *shape), device=run.device, generator=generator), None
    try:
        other = compose_dataset(name)
    except UserError as error:
        raise UserError(
            f"ood.set={name} is neither noise nor a dataset option ({error}); choose noise or one of "
            f"the dataset group's options"
        ) from None
    data = load_data(other)
    theirs = tuple(data.test_images.shape[1:])
    if theirs[0] != shape[0]:
        raise UserError(
            f"ood.set={name} has images of shape {theirs} but the run's are {tuple(shape)}; choose an OOD set with "
            f"the same number of channels, or noise"
        )
    images = data.test_images if count is None else data.test_images[:count]
    images = images.to(run.device).float() / 255
    if theirs == tuple(shape):
        return images, None
    resized = F.interpolate(images, size=tuple(shape[1:]), mode="bilinear", antialias=True, align_corners=False)
    return resized.clamp_(0, 1), list(theirs[1:])


def check_excess(cfg: DictConfig, num_points: int, model: str) -> None:
    """The excess-loss settings, before any part runs."""
    for point in cfg.excess.points:
        if not 0 <= point < num_points:
            raise UserError(
                f"excess.points holds {point}, which is not a mixing point of {model} (0..{num_points - 1}); "
                f"pick points from that range"
            )
    if cfg.excess.points and not (cfg.excess.alpha > 0 and cfg.excess.draws >= 1):
        raise UserError(
            f"excess.alpha must be > 0 and excess.draws at least 1 (got {cfg.excess.alpha} and "
            f"{cfg.excess.draws}); the mixtures are lam ~ Beta(alpha, alpha), drawn that many times per image"
        )


def clean_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Every score of the registry (mmx.metrics), those computed here only (the Brier score) too."""
    return classification_metrics(logits, labels, every=True)


def no_validation_words(run) -> str:
    return (
        f"{run.run_dir} has no validation split, and a temperature fitted on the test set would be a choice made "
        f"on it; train the run with dataset.val_size=N (or a fraction such as 0.1) to fit one"
    )


def check_temperature(cfg: DictConfig, run) -> None:
    """temperature.fit=true needs held-out images; before any part runs."""
    if cfg.temperature.fit not in ("auto", True, False):
        raise UserError(f"temperature.fit={cfg.temperature.fit} is not allowed: choose one of auto, true, false")
    if cfg.temperature.fit is True and run.data.val_size == 0:
        raise UserError(no_validation_words(run))


def temperature_scaling(cfg: DictConfig, run, test_logits: torch.Tensor, labels: torch.Tensor) -> dict | None:
    """One temperature fitted on the run's validation split, and the test metrics before and after dividing the
    logits by it; None when the run holds out no images (temperature.fit=auto) or fit=false."""
    if cfg.temperature.fit is False or run.data.val_size == 0:
        return None
    val_pixels, val_labels = run.val_pixels()
    fit = temperature.fit_temperature(logits_of(run, val_pixels, cfg.batch_size), val_labels)
    before = clean_metrics(test_logits, labels)
    if fit.separable:
        log.warning(
            "no temperature fitted: the network classifies all %d validation images correctly, so their NLL only "
            "falls as T goes to 0; hold out more images (dataset.val_size) to fit one",
            len(val_labels),
        )
        after = None
    else:
        if fit.at_bound:
            log.warning(
                "the fitted temperature %.4g is at the end of its search range %s: the validation NLL still falls "
                "beyond",
                fit.temperature,
                temperature.BOUNDS,
            )
        after = clean_metrics(test_logits / fit.temperature, labels)
    return {
        "value": fit.temperature,
        "fitted_on": "validation",
        "val_images": len(val_labels),
        "val_nll": {"before": fit.nll_before, "after": fit.nll_after},
        "at_bound": fit.at_bound,
        "separable": fit.separable,
        "test": {"before": before, "after": after},
    }


def evaluate_run(cfg: DictConfig) -> dict:
    run = trained_run.load(cfg.run, cfg.checkpoint, cfg.device)
    check_excess(cfg, run.network.num_points, run.cfg.model.name)
    check_temperature(cfg, run)

    def seed_of(part: str) -> int:
        """A seed of its own for each part, so that its draws do not depend on which other parts ran."""
        digest = hashlib.blake2b(f"{cfg.seed}/{part}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 1

    def generator(part: str) -> torch.Generator:
        return torch.Generator(run.device).manual_seed(seed_of(part))

    pixels, labels = run.test_pixels(cfg.max_images)
    size = cfg.batch_size
    started = time.perf_counter()
    log.info(
        "evaluating %s (%s checkpoint, epoch %d) on %d test images", run.run_dir, run.checkpoint, run.epoch, len(labels)
    )

    parts = 2 + len(cfg.fgsm.epsilons) + (len(cfg.pgd.epsilons) if cfg.pgd.steps > 0 else 0)
    parts += len(deformations.DEFORMATIONS) if cfg.deformations else 0
    parts += len(cfg.excess.points)
    progress = tqdm(total=parts, desc="mmx eval", unit="part", disable=not show_progress(cfg.progress))
    logits = logits_of(run, pixels, size)
    probs = logits.softmax(dim=1)
    clean = clean_metrics(logits, labels)
    bins = calibration.reliability_bins(probs, labels, cfg.calibration.bins)
    calibration.plot_reliability(
        bins,
        run.run_dir / "reliability.png",
        f"{run.cfg.dataset.name} {run.cfg.model.name} {run.cfg.mixup.name}: ECE {clean['ece']:.3f}",
    )
    result = {
        "run": str(run.run_dir),
        "checkpoint": run.checkpoint,
        "epoch": run.epoch,
        "images": len(labels),
        "device": str(run.device),
        "clean": clean,
        "reliability": bins,
        "temperature": temperature_scaling(cfg, run, logits, labels),
    }
    if result["temperature"] is None:
        result["temperature_skipped"] = (
            "temperature.fit=false" if cfg.temperature.fit is False else "the run has no validation split"
        )
        if cfg.temperature.fit == "auto":
            log.info("temperature scaling skipped: %s", no_validation_words(run))

    progress.update()
    result["fgsm"] = {}
    for eps in cfg.fgsm.epsilons:
        progress.set_postfix_str(f"FGSM ε={eps:g}")
        result["fgsm"][f"{eps:g}"] = accuracy_under(
            run, pixels, labels, size, lambda x, y, eps=eps: attacks.fgsm(run.logits, x, y, eps)
        )
        progress.update()
    result["pgd"] = None
    if cfg.pgd.steps > 0:
        result["pgd"] = {"steps": cfg.pgd.steps, "step_size": cfg.pgd.step_size, "acc": {}}
        for eps in cfg.pgd.epsilons:
            step = cfg.pgd.step_size if cfg.pgd.step_size is not None else 2.5 * eps / cfg.pgd.steps
            draws = generator(f"pgd/{eps:g}")
            progress.set_postfix_str(f"PGD ε={eps:g}")
            result["pgd"]["acc"][f"{eps:g}"] = accuracy_under(
                run, pixels, labels, size, lambda x, y: attacks.pgd(run.logits, x, y, eps, cfg.pgd.steps, step, draws)
            )
            progress.update()
    result["deformations"] = {}
    for name in deformations.DEFORMATIONS if cfg.deformations else []:
        draws = generator(f"deform/{name}")
        progress.set_postfix_str(name)
        result["deformations"][name] = accuracy_under(
            run, pixels, labels, size, lambda x, y: deformations.deform(x, name, draws)
        )
        progress.update()

    result["excess"] = None
    if cfg.excess.points:
        result["excess"] = {"alpha": cfg.excess.alpha, "draws": cfg.excess.draws, "points": {}}
        splits = {
            "train": (run.data.train_images.float() / 255, run.data.train_labels),
            "test": (pixels, labels),
        }
        for point in cfg.excess.points:
            progress.set_postfix_str(f"excess loss at point {point}")
            result["excess"]["points"][str(point)] = {
                split: excess.excess_mixup_loss(
                    run.logits,
                    images,
                    targets,
                    run.data.num_classes,
                    point,
                    excess.Mixtures.draw(len(targets), cfg.excess.alpha, cfg.excess.draws, seed_of(f"excess/{split}")),
                    size,
                )
                for split, (images, targets) in splits.items()
            }
            progress.update()

    name = paired_ood_set(run.cfg.dataset) if cfg.ood.set == "auto" else cfg.ood.set
    pixels, resized_from = ood_pixels(run, name, cfg.ood.max_images, generator("ood"))
    outside = logits_of(run, pixels, size)
    result["ood"] = {
        "set": name,
        "images": len(outside),
        "resized_from": resized_from,
        **{score: ood.detection_metrics(fn(logits), fn(outside)) for score, fn in ood.SCORES.items()},
    }
    progress.update()
    progress.close()
    result["seconds"] = time.perf_counter() - started
    RunDir(run.run_dir).write_eval(result)
    return result


def calibration_words(values: dict) -> str:
    """The calibration scores of the registry (NLL, ECE, Brier, ...), as one run's numbers are read."""
    return "  ".join(f"{s.label} {values[s.name]:.{s.read_decimals}f}" for s in scores(every=True) if s.calibration)


def report(result: dict) -> str:
    c = result["clean"]
    lines = [f"clean: acc {c['acc']:.2f}%  {calibration_words(c)}"]
    scaled = result.get("temperature")
    if scaled and scaled["value"] is None:
        lines.append(
            f"temperature scaling: no T fitted (all {scaled['val_images']} validation images are classified "
            f"correctly, so no T minimises their NLL)"
        )
    elif scaled:
        after = scaled["test"]["after"]
        lines.append(
            f"temperature {scaled['value']:.4f} (fitted on {scaled['val_images']} validation images): "
            f"{calibration_words(after)}"
        )
    else:
        why = result.get("temperature_skipped", "")
        hint = "; dataset.val_size sets one" if "validation" in why else ""
        lines.append(f"temperature scaling: not fitted ({why}{hint})")
    lines += [
        "FGSM acc: " + "  ".join(f"eps {e}: {a:.2f}%" for e, a in result["fgsm"].items()),
    ]
    if result["pgd"]:
        lines.append(
            f"PGD-{result['pgd']['steps']} acc: "
            + "  ".join(f"eps {e}: {a:.2f}%" for e, a in result["pgd"]["acc"].items())
        )
    if result["deformations"]:
        lines.append("deformations acc: " + "  ".join(f"{n} {a:.1f}%" for n, a in result["deformations"].items()))
    for point, splits in (result.get("excess") or {}).get("points", {}).items():
        lines.append(
            f"excess mixup loss at point {point}: "
            + "  ".join(f"{split} {values['excess']:.4f}" for split, values in splits.items())
        )
    o = result["ood"]
    lines.append(
        f"OOD ({o['set']}, {o['images']} images): "
        + "  ".join(f"{s} AUROC {o[s]['auroc']:.4f} FPR95 {o[s]['fpr95']:.4f}" for s in ood.SCORES)
    )
    lines.append(f"wrote {result['run']}/eval.json and reliability.png ({result['seconds']:.1f} s)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: {__doc__.strip()}\n\nKeys and defaults (set with KEY=VALUE):\n")
        print(resources.files("mmx.configs").joinpath("eval.yaml").read_text())
        return 0
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s", stream=sys.stderr
    )
    with initialize_config_module("mmx.configs", version_base="1.3"):
        try:
            cfg = compose("eval", overrides=quote_paths(argv, ("run",)))
            OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        except MissingMandatoryValue:
            raise UserError("no run given; pass run=RUN_DIR (a directory written by mmx train)") from None
        except HydraException as error:
            raise UserError(f"{str(error).splitlines()[0]}; see `mmx eval --help` for the keys") from None
    check_finite(cfg)
    print(report(evaluate_run(cfg)))
    return 0
