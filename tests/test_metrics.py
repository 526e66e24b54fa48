"""Classification metrics against hand-computed values."""

from __future__ import annotations

import pytest

from workbench.metrics import classification_metrics


def test_metrics_against_hand_computed_values():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: p=2/2, r=2/3, f1=0.8; b: p=1/2, r=1/2, f1=0.5; c: p=1/2, r=1, f1=2/3
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["macro_precision"] == pytest.approx(2 / 3)


def test_metrics_zero_division_and_absent_class():
    m = classification_metrics([0, 0, 1, 1], [0, 0, 0, 0], ["x", "y", "z"])
    assert m["per_class"]["y"]["precision"] == 0.0 and m["per_class"]["y"]["recall"] == 0.0
    assert m["per_class"]["z"]["support"] == 0 and m["per_class"]["z"]["f1"] == 0.0
    # x: p = 2/4, r = 1, f1 = 2/3; averaged over all three labels
    assert m["macro_f1"] == pytest.approx((2 / 3) / 3)
    assert m["accuracy"] == 0.5
