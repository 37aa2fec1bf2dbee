"""How much of the demo's labels the transcripts give away, and what answering by the prior gets:
the yardsticks for the tuned model's accuracy (issue 13; results in docs/benchmarks.md, "What
accuracy the demo data allows").

Run: PYTHONPATH=. .venv/bin/python bench/demo_ceiling.py SYNTH_DIR [HOME/ccr.db]

SYNTH_DIR is a demo dataset folder (``train_chatml.jsonl`` and ``test_chatml.jsonl``, as ``ccr
demo`` writes them under its home). For each task, on the test split, with the evaluation's own
agreement rule (``tasks.agrees``: QA within 10 points, coaching as an exact set):

- the best constant answer per task, chosen on the test split itself (``engine.evaluation.baseline``,
  the bar the evaluation report puts every accuracy beside);
- prior: always the most common training answer of the task (the QA median);
- chain labels: the most common answer among the chains of a home's training export (what a
  student that learned only its training answers' prior would say), when HOME/ccr.db is given;
- word classifiers fitted on all 300 training transcripts (every transcript carries all seven
  labels): multinomial naive Bayes on words and word pairs, and 7 nearest neighbours on TF-IDF
  (cosine; QA the neighbours' median, coaching an item when most neighbours have it).

With a home it also prints, per task, the tuned and base models' stored accuracy and how many
distinct answers each gave (a model that gives one answer to every call has learned the prior).
No model is loaded; it runs in seconds. Not part of the product; no test covers it.
"""
from __future__ import annotations

import json
import math
import re
import sqlite3
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from engine.data import tasks
from engine.evaluation import baseline
from engine.evaluation.stats import mcnemar_exact, wilson

if len(sys.argv) < 2:
    sys.exit(__doc__)
SYNTH = Path(sys.argv[1])
DB = sys.argv[2] if len(sys.argv) > 2 else None


def load(split: str) -> list[dict]:
    rows = []
    for line in open(SYNTH / f"{split}_chatml.jsonl"):
        r = json.loads(line)
        user = next(m["content"] for m in r["messages"] if m["role"] == "user")
        transcript = user.split(tasks.TASK_HEADER)[0]
        rows.append({"id": r["meta"]["id"], "task": r["meta"]["task"], "labels": r["meta"]["labels"],
                     "text": transcript})
    return rows


train, test = load("train"), load("test")
KEYS = ("csat", "quality", "churn", "sentiment", "sentiment_trajectory", "root_cause", "coaching")


def words(text: str) -> list[str]:
    w = re.findall(r"[a-z']+|\d+", text.lower())
    return w + [a + "_" + b for a, b in zip(w, w[1:])]


vocab: dict[str, int] = {}
for r in train:
    for w in set(words(r["text"])):
        vocab.setdefault(w, len(vocab))


def counts(rows: list[dict]) -> np.ndarray:
    X = np.zeros((len(rows), len(vocab)), dtype=np.float32)
    for i, r in enumerate(rows):
        for w in words(r["text"]):
            j = vocab.get(w)
            if j is not None:
                X[i, j] += 1
    return X


Xtr, Xte = counts(train), counts(test)
df = (Xtr > 0).sum(0)
idf = np.log((1 + len(train)) / (1 + df)) + 1


def tfidf(X: np.ndarray) -> np.ndarray:
    T = np.log1p(X) * idf
    return T / np.maximum(np.linalg.norm(T, axis=1, keepdims=True), 1e-9)


sims = tfidf(Xte) @ tfidf(Xtr).T


def nb_predict(key: str) -> list:
    """Multinomial naive Bayes (Laplace smoothing) on one categorical label; QA in 10-point bins."""
    ys = [r["labels"][key] if key != "quality" else min(r["labels"][key] // 10, 9) for r in train]
    classes = sorted(set(ys), key=str)
    logp = []
    for c in classes:
        idx = [i for i, y in enumerate(ys) if y == c]
        wc = Xtr[idx].sum(0) + 1
        logp.append((math.log(len(idx) / len(ys)), np.log(wc / wc.sum())))
    scores = np.stack([prior + Xte @ lw for prior, lw in logp], axis=1)
    out = [classes[k] for k in scores.argmax(1)]
    return [o * 10 + 5 if key == "quality" else o for o in out]


def knn_predict(key: str, k: int = 7) -> list:
    out = []
    for i in range(len(test)):
        near = [train[j]["labels"][key] for j in np.argsort(-sims[i])[:k]]
        if key == "quality":
            out.append(float(np.median(near)))
        elif key == "coaching":
            items = Counter(x for n in near for x in n)
            out.append(sorted(x for x, c in items.items() if c > k / 2))
        else:
            out.append(Counter(near).most_common(1)[0][0])
    return out


def constant(key: str, rows: list[dict]):
    vals = [r["labels"][key] for r in rows]
    if key == "quality":
        return float(np.median(vals))
    if key == "coaching":
        return sorted(Counter(tuple(sorted(v)) for v in vals).most_common(1)[0][0])
    return Counter(vals).most_common(1)[0][0]


def accuracy(pred_of) -> dict:
    """pred_of(task, i, row) -> parsed answer dict; accuracy per task and overall on the test split,
    and the exact McNemar test against the best constant answer on the same examples."""
    per, hits = defaultdict(list), []
    for i, r in enumerate(test):
        ok = bool(tasks.agrees(r["task"], pred_of(r["task"], i, r), r["labels"]))
        per[r["task"]].append(ok)
        hits.append(ok)
    out = {t: f"{sum(v)}/{len(v)}" for t, v in sorted(per.items())}
    lo, hi = wilson(sum(hits), len(hits))
    out["overall"] = f"{sum(hits) / len(hits):.2f} [{lo:.2f}, {hi:.2f}] (n={len(hits)})"
    const = [bool(tasks.agrees(r["task"], best["answers"][r["task"]], r["labels"])) for r in test]
    b = sum(c and not h for c, h in zip(const, hits))
    c = sum(h and not c for c, h in zip(const, hits))
    out["vs constant"] = f"{c} right only here, {b} only by the constant: p={mcnemar_exact(b, c):.3g}"
    return out


results = {}
best = baseline.best_constant(test)   # what the report calls the constant-answer bar
results["best constant answer per task, chosen on the test split (the report's bar)"] = accuracy(
    lambda t, i, r: best["answers"][t])
prior = {k: constant(k, train) for k in KEYS}
results["prior (most common training answer)"] = accuracy(
    lambda t, i, r: {k: prior[k] for k in tasks.TASK_KEYS[t]})

if DB and (Path(DB).parent / "train_reasoning.jsonl").exists():
    home = Path(DB).parent
    chain_rows = [json.loads(line)["meta"] for line in open(home / "train_reasoning.jsonl")]
    by_id = {r["id"]: r for r in train}
    chain_train = [by_id[m["id"]] for m in chain_rows if m.get("id") in by_id]
    chain_prior = {}
    for t, keys in tasks.TASK_KEYS.items():
        rows = [r for r in chain_train if r["task"] == t]
        for k in keys:
            chain_prior[k] = constant(k, rows) if rows else prior[k]
    results[f"chain prior (most common answer of the {len(chain_train)} training chains, per task)"] = accuracy(
        lambda t, i, r: {k: chain_prior[k] for k in tasks.TASK_KEYS[t]})

nb = {k: nb_predict(k) for k in KEYS if k != "coaching"}
knn = {k: knn_predict(k) for k in KEYS}
results["naive Bayes, 300 transcripts (coaching: 7-NN)"] = accuracy(
    lambda t, i, r: {k: (nb if k in nb else knn)[k][i] for k in tasks.TASK_KEYS[t]})
results["7 nearest neighbours, TF-IDF, 300 transcripts"] = accuracy(
    lambda t, i, r: {k: knn[k][i] for k in tasks.TASK_KEYS[t]})

if DB:
    db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
    for ev_id, model in db.execute("SELECT id, model FROM evaluations ORDER BY id"):
        rows = db.execute("SELECT task, parsed, correct FROM eval_predictions WHERE evaluation_id = ?", (ev_id,)).fetchall()
        per, answers = defaultdict(list), defaultdict(Counter)
        for task, parsed, correct in rows:
            per[task].append(bool(correct))
            answers[task][parsed or "(no answer)"] += 1
        out = {t: f"{sum(v)}/{len(v)}, {len(answers[t])} distinct" for t, v in sorted(per.items())}
        n = sum(len(v) for v in per.values())
        k = sum(sum(v) for v in per.values())
        lo, hi = wilson(k, n)
        out["overall"] = f"{k / n:.2f} [{lo:.2f}, {hi:.2f}] (n={n})"
        v = baseline.versus_constant([{"task": t, "labels": json.loads(lab), "correct": ok} for t, lab, ok in
                                      db.execute("SELECT task, labels, correct FROM eval_predictions "
                                                 "WHERE evaluation_id = ?", (ev_id,))], best)
        out["vs constant"] = (f"{v['discordant']['model_only']} right only here, {v['discordant']['constant_only']} "
                              f"only by the constant: p={v['p_value']:.3g}")
        results[f"stored answers of {model}"] = out

print(f"train {len(train)} transcripts, test {len(test)}; prior answers: {prior}")
for name, res in results.items():
    print(f"\n{name}")
    for t, v in res.items():
        print(f"  {t:12s} {v}")
