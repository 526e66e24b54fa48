"""Classification metrics in numpy: accuracy, macro and per-class precision/recall/F1, confusion.

Precision of a class never predicted is 0, recall of a class absent from the evaluated split is 0,
and macro averages run over all the task's labels (sklearn's `zero_division=0` convention).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Counts [true, predicted]."""
    m = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str]) -> dict:
    """accuracy, macro precision/recall/F1, per-class precision/recall/F1/support and the confusion
    matrix (rows true, columns predicted)."""
    k = len(label_names)
    m = confusion(y_true, y_pred, k)
    tp = np.diag(m).astype(float)
    predicted, support = m.sum(0).astype(float), m.sum(1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    n = int(m.sum())
    return {
        "examples": n,
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "per_class": {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                             "support": int(support[i])} for i, name in enumerate(label_names)},
        "labels": list(label_names),
        "confusion": m.tolist(),
    }
