"""multinomial: shapes and errors as torch's, the distribution checked by chi-square at fixed
seeds, the generator's counters (a draw depends on the seed and the draws before it only), and
the same indices on every device."""

from __future__ import annotations

import numpy as np
import orchard_core as oc
import pytest
import torch
from _core_helpers import OC, host_values

# The 0.9999 quantile of chi-square by degrees of freedom (scipy.stats.chi2.ppf): a correct
# sampler fails one seed in 10^4, a sampler off by a few percent fails always.
CHI2_9999 = {2: 18.42, 3: 21.11, 5: 25.74, 6: 27.86}


def chi_square(counts: np.ndarray, probabilities: np.ndarray) -> float:
    expected = counts.sum() * probabilities
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_with_replacement_follows_the_weights(device, dtype):
    weights = np.array([[3.0, 0.5, 0.0, 1.0, 2.0, 0.25, 4.0], [1, 1, 1, 1, 1, 1, 1]])
    oc.manual_seed(1234)
    draws = host_values(oc.multinomial(oc.tensor(weights).to(OC[dtype]).to(device), 20000, replacement=True))
    assert draws.shape == (2, 20000) and draws.dtype == np.int64
    for row in range(2):
        counts = np.bincount(draws[row], minlength=7)
        positive = weights[row] > 0
        assert np.all(counts[~positive] == 0)  # a zero weight is never drawn
        p = weights[row][positive] / weights[row].sum()
        assert chi_square(counts[positive], p) < CHI2_9999[int(positive.sum()) - 1]


def test_the_chi_square_check_catches_a_wrong_sampler():
    """The same statistic on draws from slightly wrong probabilities (the last weight 10% low)
    is far above the bound: the check above can fail."""
    weights = np.array([3.0, 0.5, 1.0, 2.0, 0.25, 4.0])
    wrong = weights * np.array([1, 1, 1, 1, 1, 0.9])
    oc.manual_seed(1234)
    draws = host_values(oc.multinomial(oc.tensor(wrong), 20000, replacement=True))
    assert chi_square(np.bincount(draws, minlength=6), weights / weights.sum()) > CHI2_9999[5]


def test_without_replacement_draws_distinct_categories_in_weight_order(device):
    """Each row's draws are distinct, positive-weight categories; the first draw follows the
    weights and the second follows them with the first removed (checked through pair counts)."""
    weights = np.array([5.0, 1.0, 0.0, 3.0, 1.0])
    oc.manual_seed(99)
    rows = np.tile(weights, (6000, 1))
    draws = host_values(oc.multinomial(oc.tensor(rows).to(device), 3))
    assert draws.shape == (6000, 3)
    assert np.all(np.sort(draws, 1)[:, 1:] != np.sort(draws, 1)[:, :-1]) and not np.any(draws == 2)
    first = np.bincount(draws[:, 0], minlength=5)
    positive = weights > 0
    assert chi_square(first[positive], weights[positive] / weights.sum()) < CHI2_9999[3]
    # P(second = j | first = 0) = w_j / (sum - w_0).
    after_zero = draws[draws[:, 0] == 0, 1]
    rest = np.array([1.0, 3.0, 1.0])
    counts = np.bincount(after_zero, minlength=5)[[1, 3, 4]]
    assert chi_square(counts, rest / rest.sum()) < CHI2_9999[2]


def test_all_samples_without_replacement_is_a_permutation(device):
    """Zero weights come last, lowest index first, once the positive ones are drawn (torch's CPU
    kernel also draws them last)."""
    oc.manual_seed(5)
    draws = host_values(oc.multinomial(oc.tensor(np.arange(1.0, 14.0)).to(device), 13))
    assert sorted(draws.tolist()) == list(range(13))
    weights = np.array([[0.0, 2.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    draws = host_values(oc.multinomial(oc.tensor(weights).to(device), 4))
    assert sorted(draws[0, :2].tolist()) == [1, 3] and draws[0, 2:].tolist() == [0, 2]
    assert draws[1].tolist() == [0, 1, 2, 3]


def test_draws_use_the_generator_counters(device):
    """The same seed gives the same draws; a second draw continues the stream; 1-D input and the
    method give 1-D results."""
    weights = oc.tensor(np.array([[1.0, 2.0, 3.0], [0.5, 0.0, 0.5]])).to(device)
    oc.manual_seed(7)
    first = host_values(oc.multinomial(weights, 4, True))
    second = host_values(weights.multinomial(4, replacement=True))
    oc.manual_seed(7)
    np.testing.assert_array_equal(host_values(oc.multinomial(weights, 4, True)), first)
    assert not np.array_equal(host_values(oc.multinomial(weights, 4, True)), first)
    assert second.shape == (2, 4)
    oc.manual_seed(7)
    assert oc.multinomial(weights[0], 2).shape == (2,)


@pytest.mark.parametrize("replacement", [True, False])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_every_device_draws_the_cpus_indices(rng, monkeypatch, device, dtype, replacement):
    if device == "cpu":
        pytest.skip("the CPU is the reference")
    monkeypatch.delenv("ORCHARD_CPU_FALLBACK", raising=False)
    weights = rng.random((5, 37)) * (rng.random((5, 37)) < 0.7)
    weights[:, 0] = 0.5  # a positive sum; about 11 positive weights, so 17 draws reach the zeros
    draws = []
    for where in ("cpu", device):
        oc.manual_seed(2024)
        draws.append(host_values(oc.multinomial(oc.tensor(weights).to(OC[dtype]).to(where), 17, replacement)))
    np.testing.assert_array_equal(draws[1], draws[0])


ERRORS = [
    (np.ones((2, 2, 2)), 1, False, "prob_dist must be 1 or 2 dim, got shape \\[2, 2, 2\\]"),
    (np.ones(3), 0, True, "cannot sample n_sample <= 0 samples \\(0\\)"),
    (np.ones(3), 4, False, "without replacement \\(4 > 3\\)"),
    (np.array([1.0, -0.5, 2.0]), 1, True, "element < 0 \\(-0.5 in row 0, category 1\\)"),
    (
        np.array([[1.0, 1.0], [np.inf, 1.0]]),
        1,
        True,
        "`inf`, `nan` or element < 0 \\(inf in row 1, category 0\\)",
    ),
    (np.array([1.0, np.nan]), 1, True, "\\(nan in row 0, category 1\\)"),
    (np.array([[1.0, 1.0], [0.0, 0.0]]), 1, True, "sum of probabilities <= 0\\) in row 1"),
]


@pytest.mark.parametrize(("weights", "samples", "replacement", "message"), ERRORS)
def test_bad_input_raises_as_torch_does(device, weights, samples, replacement, message):
    with pytest.raises(RuntimeError, match=message):
        oc.multinomial(oc.tensor(weights).to(device), samples, replacement)
    with pytest.raises(RuntimeError):
        torch.multinomial(torch.from_numpy(weights), samples, replacement)


def test_integer_weights_are_a_type_error():
    with pytest.raises(TypeError, match="dtype must be floating point, got int64"):
        oc.multinomial(oc.tensor(np.array([1, 2, 3])), 1)


@pytest.mark.parametrize("replacement", [True, False])
def test_draws_do_not_depend_on_the_thread_count(rng, replacement):
    weights = oc.tensor(rng.random((300, 257)))
    before = oc.get_num_threads()
    try:
        draws = []
        for threads in (1, 2):
            oc.set_num_threads(threads)
            oc.manual_seed(3)
            draws.append(host_values(oc.multinomial(weights, 60, replacement)))
    finally:
        oc.set_num_threads(before)
    np.testing.assert_array_equal(draws[0], draws[1])
