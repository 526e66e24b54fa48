"""A classical baseline for the downstream tasks: bag-of-words logistic regression (scikit-learn).

    bag_of_words(task_data, cs=(0.1, 1.0, 10.0, 100.0))

TF-IDF of word unigrams and bigrams (sublinear term frequency) feeds a logistic regression; its
inverse regularisation strength C is chosen on the validation split, and only the chosen C is
scored on the test split. It needs no pre-training and no GPU and fits in seconds, so it shows where
a small pre-trained model stands against what a word count already knows (spam, for example, is
nearly solved by it).
"""

from __future__ import annotations

from typing import Optional, Sequence

from .metrics import classification_metrics
from .tasks import TaskData


def _texts(split) -> list[str]:
    """The text of each example; a sentence pair is joined by a separator token of its own."""
    if "text_pair" in split.column_names:
        return [f"{a} __pair__ {b}" for a, b in zip(split["text"], split["text_pair"])]
    return list(split["text"])


def bag_of_words(data: TaskData, cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0),
                 eval_examples: Optional[int] = None) -> dict:
    """Fit TF-IDF + logistic regression for each C on the training split, choose C by the task's
    primary metric on the validation split (the first `eval_examples` examples, as fine-tuning
    validates on), ties to the smaller C; score the chosen C once on the test split. Returns
    {"sweep": [{"C", "validation"}], "C", "score", "accuracy", "macro_f1"}."""
    # scikit-learn is imported here, not at module level: it takes about a second to import and only
    # this baseline needs it (the CLI builds its parser from modules that import this one)
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    if not cs:
        raise ValueError("the bag-of-words baseline needs at least one C to try")
    val = data["validation"]
    if eval_examples and eval_examples < len(val):
        val = val.select(range(eval_examples))
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    x_train = vectorizer.fit_transform(_texts(data["train"]))
    x_val, x_test = vectorizer.transform(_texts(val)), vectorizer.transform(_texts(data["test"]))
    y_train = list(data["train"]["label"])
    sweep, fitted = [], []
    for c in cs:
        clf = LogisticRegression(C=float(c), max_iter=2000).fit(x_train, y_train)
        m = classification_metrics(list(val["label"]), clf.predict(x_val), data.label_names)
        sweep.append({"C": float(c), "validation": m[data.metric]})
        fitted.append(clf)
    best = max(range(len(cs)), key=lambda i: (sweep[i]["validation"], -sweep[i]["C"]))
    test = classification_metrics(list(data["test"]["label"]), fitted[best].predict(x_test), data.label_names)
    return {"sweep": sweep, "C": sweep[best]["C"], "score": test[data.metric], "accuracy": test["accuracy"],
            "macro_f1": test["macro_f1"]}
