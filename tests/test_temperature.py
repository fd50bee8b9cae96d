"""Temperature scaling: the fitted T is the one that minimises the held-out NLL, and it recovers a known factor."""

import math

import pytest
import torch

from mmx.evaluation.temperature import BOUNDS, fit_temperature, nll


def calibrated(n=20000, classes=5, seed=0):
    """Logits and labels drawn from softmax(logits): a network calibrated by construction (T = 1)."""
    generator = torch.Generator().manual_seed(seed)
    logits = 2.0 * torch.randn(n, classes, generator=generator)
    labels = torch.multinomial(logits.softmax(dim=1), 1, generator=generator).squeeze(1)
    return logits, labels


@pytest.mark.parametrize("factor", [0.25, 1.0, 3.0])
def test_logits_multiplied_by_a_factor_are_fitted_a_temperature_of_that_factor(factor):
    logits, labels = calibrated()
    fit = fit_temperature(logits * factor, labels)
    assert fit.temperature == pytest.approx(factor, rel=0.03)  # sampling noise of 20,000 labels
    assert not fit.at_bound and fit.nll_after <= fit.nll_before + 1e-12
    exact = fit_temperature(logits, labels).temperature
    assert fit.temperature == pytest.approx(factor * exact, rel=1e-6)  # the same optimum, scaled exactly


def test_the_fit_is_the_minimum_and_deterministic():
    logits, labels = calibrated(n=2000, seed=1)
    fit = fit_temperature(logits * 2, labels)
    assert fit_temperature(logits * 2, labels) == fit
    for nearby in (fit.temperature * 0.99, fit.temperature * 1.01):
        assert nll(logits.double() * 2, labels, nearby) > fit.nll_after
    assert fit.nll_after == pytest.approx(nll(logits.double() * 2, labels, fit.temperature))


def test_a_fit_that_runs_into_the_search_range_says_so():
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    fit = fit_temperature(logits, torch.tensor([0, 1]))  # one right, one wrong: the NLL falls as T grows
    assert fit.at_bound and not fit.separable and math.isclose(fit.temperature, BOUNDS[1], rel_tol=1e-3)


def test_a_split_classified_without_an_error_has_no_temperature():
    logits, labels = calibrated(n=500, seed=2)
    right = logits.argmax(dim=1)
    fit = fit_temperature(logits, right)  # every image's own logit is its largest
    assert fit.separable and fit.temperature is None and fit.nll_after is None and not fit.at_bound
    for smaller in (1.0, 0.1, 0.01):  # why: the NLL only falls as T shrinks, so no T minimises it
        assert nll(logits.double(), right, smaller / 2) < nll(logits.double(), right, smaller)
    one_wrong = right.clone()
    one_wrong[0] = (right[0] + 1) % 5
    assert fit_temperature(logits, one_wrong).temperature is not None  # a single error gives the NLL a minimum


def test_a_run_without_a_temperature_reports_and_tabulates_none():
    from mmx.evaluation.command import report
    from mmx.report.runs import flatten_eval

    clean = {"acc": 100.0, "error": 0.0, "nll": 0.01, "ece": 0.004, "brier": 0.001}
    result = {
        "checkpoint": "last",
        "clean": clean,
        "temperature": {"value": None, "val_images": 144, "separable": True, "test": {"before": clean, "after": None}},
        "fgsm": {},
        "pgd": None,
        "deformations": {},
        "ood": {"set": "noise", "images": 1, "msp": {"auroc": 1, "fpr95": 0}, "energy": {"auroc": 1, "fpr95": 0}},
        "run": "r",
        "seconds": 1.0,
    }
    assert "no T fitted (all 144 validation images are classified correctly" in report(result)
    assert "eval_temperature" not in flatten_eval(result) and "eval_nll_scaled" not in flatten_eval(result)
