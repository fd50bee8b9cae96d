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
    logits = torch.tensor([[0.01, 0.0], [0.0, 0.01]])
    fit = fit_temperature(logits, torch.tensor([0, 1]))  # separated: the NLL falls as T goes to 0
    assert fit.at_bound and math.isclose(fit.temperature, BOUNDS[0], rel_tol=1e-3)
