"""read_sweep: the sentence the Few-shot tab shows under a sweep says what the curve means."""

from tokenscope.lm.fewshot import SweepPoint
from tokenscope.lm.fewshot.scoring import read_sweep


def _points(*ps, order=0):
    return [SweepPoint(k, order, p, 1, " x", p) for k, p in enumerate(ps)]


def test_each_shape_of_curve_gets_its_reading():
    assert read_sweep(_points(0.97, 0.98, 0.99)).startswith("Flat and high")
    assert read_sweep(_points(0.01, 0.4, 0.9)).startswith("Rising from 0.01")
    assert read_sweep(_points(0.01, 0.02, 0.05)).startswith("Low throughout")
    assert read_sweep(_points(0.5, 0.6, 0.55)) == "From 0.50 with no example to 0.55 with 2."
    assert read_sweep(_points(0.5)) == ""
    # Only the examples in their given order are read (shuffled orders are other curves).
    mixed = _points(0.01, 0.9) + _points(0.9, 0.9, order=1)
    assert read_sweep(mixed).startswith("Rising")
