"""Why a demo's tuned answers are unfaithful: a read-only breakdown of a home's evaluations and
training chains (issue 13; results in docs/benchmarks.md, "Why the tuned answers contradict").

Run: PYTHONPATH=. .venv/bin/python bench/demo_faithfulness.py HOME/ccr.db [OUT_DIR]

It rescores the stored base and tuned answers with the evaluation's own faithfulness function,
sorts every contradiction by the label it concerns (the example's own task label, or another
task's), and asks the counterfactual: the faithful rate once every sentence stating or implying
another task's label is dropped. Which label a sentence concerns is decided with the scorer's
own claim vocabularies (engine/chains/consistency.py), so this script reads some of their
private names: it is an analysis of one run, not part of the product, and no test covers it.
Writes OUT_DIR/result.json, base_rows.json and tuned_rows.json (OUT_DIR defaults to ".").
"""
from __future__ import annotations

import json
import re
import sqlite3
import sys
from collections import Counter, defaultdict

from engine.chains.analysis import analyse
from engine.chains import consistency as C
from engine.chains.quality import score_chain
from engine.chains.vocabulary import _multi
from engine.data import tasks
from engine.evaluation.evaluate import answer_faithfulness, score_answer
from engine.evaluation.stats import wilson

if len(sys.argv) < 2:
    sys.exit(__doc__)
DB = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else "."
db = sqlite3.connect(f"file:{DB}?mode=ro", uri=True)
db.row_factory = sqlite3.Row

# ---------------------------------------------------------------------------------------------
# Which label groups a sentence states or implies (the scorer's own claim vocabularies)
# ---------------------------------------------------------------------------------------------
GROUPS = ("csat", "mood", "quality", "churn", "root_cause", "coaching")
# own groups per task: mood words are checked against CSAT *and* sentiment, so they count as the
# task's own for csat and sentiment ("mood_own" variant); strict variant: csat owns only "csat".
OWN = {"csat": {"csat", "mood"}, "sentiment": {"mood"}, "quality": {"quality"}, "churn": {"churn"},
       "root_cause": {"root_cause"}, "coaching": {"coaching"}}
OWN_STRICT = {**OWN, "csat": {"csat"}}

PRAISE_PH = [p.strip() for p in ("performed well, performed very well, performed strongly, good job, great job, "
                                 "handled the call well, handled it well, strong performance, great service").split(",")]
HARSH_PH = [p.strip() for p in ("performed poorly, performed badly, poor performance, poor job, bad job, "
                                "very poor, handled poorly, handled badly").split(",")]
# lead-in phrases of prompt v4 that imply a label without a scorer-checked word (broad variant)
BROAD_QA = ["fell short", "was uneven", "did well", "interaction quality was poor", "interaction quality was mixed",
            "interaction quality was high", "reasonably well"]


def groups_of(toks: list[str], broad: bool = False) -> set[str]:
    ts = set(toks)
    line = " " + " ".join(toks) + " "
    g = set()
    if "csat" in ts:
        g.add("csat")
    moods = ts & C._MOOD_WORDS
    for t in moods:
        if t in C._AMBIGUOUS_MOODS and not C._predicative(toks, toks.index(t), 0):
            continue
        g.add("mood")
    if "sentiment" in ts or ts & (C._TRAJ_UP | C._TRAJ_DOWN):
        g.add("mood")
    if "qa" in ts or ("quality" in ts and "score" in ts) or ts & (C._PRAISE | C._HARSH) \
            or any(f" {p} " in line for p in PRAISE_PH + HARSH_PH):
        g.add("quality")
    if broad and any(f" {p} " in line for p in BROAD_QA):
        g.add("quality")
    if "churn" in ts or "attrition" in ts or C._churn_claim(toks, C._Clauses(toks, ts)) is not None:
        g.add("churn")
    if _multi(toks, ts, C._ROOT_TRIGGERS):
        g.add("root_cause")
    if ts & {"coach", "coaching", "coached"} or _multi(toks, ts, C._NO_COACHING) or ts & C._BEHAVIOUR_CHECKED:
        g.add("coaching")
    if broad and ts & C._BEHAVIOUR_ALL:
        g.add("coaching")
    if broad and ts & {"satisfaction", "rating"}:
        g.add("csat")
    return g


# ---------------------------------------------------------------------------------------------
# Fault classification (by the scorer's reason text)
# ---------------------------------------------------------------------------------------------
def fault_kind(f: dict) -> tuple[str, str]:
    """(label group, kind) of one fault."""
    r = f["reason"]
    if f["kind"] == "invented":
        toks = set(re.findall(r"[a-z]+", f["sentence"].lower()))
        sub = ("number" if r.startswith("'") else "name" if r.startswith("the name") else
               "date" if r.startswith("the date") else "channel/product" if r.startswith("mentions") else "other")
        if sub == "number" and ("qa" in toks or ("quality" in toks and "score" in toks)):
            return "quality", "invented: QA figure not a label value"
        if sub == "number" and "csat" in toks:
            return "csat", "invented: CSAT figure not a label value"
        return "transcript", f"invented {sub}"
    if r.startswith("states CSAT"):
        return "csat", "CSAT figure stated wrong"
    if r.startswith("states a QA score"):
        return "quality", "QA figure stated wrong (>10 off)"
    if r.startswith("praises the agent"):
        return "quality", "praise of agent, QA < 60"
    if r.startswith("calls the agent"):
        return "quality", "harsh words on agent, QA >= 85"
    if r.startswith("says the sentiment is"):
        return "mood", "sentiment word stated wrong"
    if r.startswith("says the customer's mood"):
        return "mood", "mood trajectory vs trajectory label"
    if r.startswith("says the customer was"):
        cites = []
        if "CSAT is" in r:
            cites.append("CSAT")
        if "sentiment is" in r:
            cites.append("sentiment")
        if "last words" in r:
            cites.append("transcript")
        return "mood", "mood word vs " + "+".join(cites)
    if r.startswith("says churn risk"):
        return "churn", "churn level stated wrong"
    if r.startswith("gives the cause"):
        return "root_cause", "root cause named wrong"
    if r.startswith("says no coaching"):
        return "coaching", "no coaching needed, but areas exist"
    if r.startswith("credits the agent"):
        return "coaching", "credits agent with a coaching-area behaviour"
    if r.startswith("says verification was skipped"):
        return "coaching", "verification skipped, not a coaching area"
    if r.startswith(("says there was no", "describes a")):
        return "transcript", "hold/transfer vs transcript"
    return "other", r[:60]


def is_other(group: str, task: str, own=OWN) -> bool | None:
    if group in ("transcript", "other"):
        return None
    return group not in own[task]


# ---------------------------------------------------------------------------------------------
# Counterfactual: drop the sentences that touch another task's label
# ---------------------------------------------------------------------------------------------
def drop_other(text: str, task: str, transcript: str, labels: dict, own=OWN, broad=False, keep_own=False) -> tuple[str, int, int]:
    """(text with other-label sentences removed, sentences dropped, sentences not found in the text)."""
    a = analyse(text, transcript=transcript, labels=labels)
    out = text
    dropped = missing = 0
    for s, toks in zip(a.texts, a.toks):
        g = groups_of(toks, broad)
        if g - own[task] and not (keep_own and g & own[task]):
            pos = out.find(s)
            if pos == -1:
                missing += 1
                continue
            out = out[:pos] + out[pos + len(s):]
            dropped += 1
    if keep_own == "surgical":
        # in the kept sentences, cut the other labels' v4 figure phrases ("(QA 49/100)", "CSAT 1/5")
        if "quality" not in own[task]:
            out = re.sub(r"\s*\(QA \d{1,3}/100\)", "", out)
            out = re.sub(r"QA score \d{1,3}/100(?:,\s*|\s+and\s+)?", "", out)
        if "csat" not in own[task]:
            out = re.sub(r"(?:,\s*|\s+and\s+)?CSAT \d/5", "", out)
    # tidy double spaces left behind (keeps line structure)
    out = re.sub(r"[ \t]{2,}", " ", out)
    return out, dropped, missing


def breakdown(rows: list[dict], own=OWN) -> dict:
    """rows: {task, faults (at_fault list)} -> counts."""
    kind_answers = Counter()      # answers with >=1 fault of a kind
    kind_faults = Counter()
    group_answers = Counter()
    contra_sent = set()
    contra_sent_other = set()
    contra_sent_own = set()
    contra_sent_neither = set()
    faults_other = faults_own = faults_neither = 0
    inv_other = inv_own = inv_transcript = 0
    per_task = defaultdict(Counter)
    for n, r in enumerate(rows):
        ks, gs = set(), set()
        for f in r["faults"]:
            g, k = fault_kind(f)
            ks.add((f["kind"], g, k))
            gs.add((f["kind"], g))
            kind_faults[(f["kind"], g, k)] += 1
            o = is_other(g, r["task"], own)
            if f["kind"] == "contradiction":
                key = (n, f["sentence"])
                contra_sent.add(key)
                if o is True:
                    contra_sent_other.add(key)
                    faults_other += 1
                elif o is False:
                    contra_sent_own.add(key)
                    faults_own += 1
                else:
                    contra_sent_neither.add(key)
                    faults_neither += 1
            else:
                if o is True:
                    inv_other += 1
                elif o is False:
                    inv_own += 1
                else:
                    inv_transcript += 1
        for k in ks:
            kind_answers[k] += 1
        for g in gs:
            group_answers[g] += 1
            per_task[r["task"]][g] += 1
    return {
        "kinds": sorted(([list(k), kind_answers[k], kind_faults[k]] for k in kind_faults), key=lambda x: -x[2]),
        "groups_answers": {f"{k[0]}:{k[1]}": v for k, v in sorted(group_answers.items())},
        "contradicting_sentences": len(contra_sent),
        "contradicting_sentences_other_label": len(contra_sent_other),
        "contradicting_sentences_own_label": len(contra_sent_own),
        "contradicting_sentences_transcript_only": len(contra_sent_neither),
        "only_other_and_own_overlap": len(contra_sent_other & contra_sent_own),
        "contradiction_faults_other/own/transcript": [faults_other, faults_own, faults_neither],
        "invented_faults_other/own/transcript": [inv_other, inv_own, inv_transcript],
        "answers_with_other_label_contradiction": len({n for n, _ in contra_sent_other}),
        "answers_with_own_label_contradiction": len({n for n, _ in contra_sent_own}),
        "per_task_groups": {t: {f"{k[0]}:{k[1]}": v for k, v in c.items()} for t, c in per_task.items()},
    }


def sentence_profile(text: str, task: str, transcript: str, labels: dict, own=OWN, broad=False) -> dict:
    a = analyse(text, transcript=transcript, labels=labels)
    n = len(a.texts)
    other = own_n = 0
    by_group = Counter()
    for toks in a.toks:
        g = groups_of(toks, broad)
        for x in g:
            by_group[x] += 1
        if g - own[task]:
            other += 1
        elif g & own[task]:
            own_n += 1
    return {"sentences": n, "other": other, "own_only": own_n, "by_group": by_group}


def evaluation_rows(eval_id: int) -> list[dict]:
    rows = []
    for r in db.execute("SELECT * FROM eval_predictions WHERE evaluation_id = ? ORDER BY position, id", [eval_id]):
        labels = json.loads(r["labels"]) if r["labels"] else {}
        transcript = tasks.split_user_content(r["prompt"])[0]
        s = score_answer({"task": r["task"], "labels": labels, "transcript": transcript}, r["output"])
        stored = json.loads(r["faithfulness"]) if r["faithfulness"] else None
        rows.append({"key": r["example_key"], "task": r["task"], "labels": labels, "transcript": transcript,
                     "text": r["output"], "faith": s["faithfulness"], "faults": s["at_fault"], "stored": stored})
    return rows


def counterfactual(rows: list[dict], own=OWN, broad=False, keep_own=False) -> dict:
    faithful = judged = dropped = missing = 0
    remaining = Counter()
    remaining_answers = Counter()
    per_task = defaultdict(lambda: [0, 0])
    for r in rows:
        text, d, m = drop_other(r["text"], r["task"], r["transcript"], r["labels"], own, broad, keep_own)
        dropped += d
        missing += m
        s = score_answer({"task": r["task"], "labels": r["labels"], "transcript": r["transcript"]}, text)
        f = s["faithfulness"]
        if f["judged"]:
            judged += 1
            per_task[r["task"]][1] += 1
            if f["faithful"]:
                faithful += 1
                per_task[r["task"]][0] += 1
        ks = set()
        for flt in s["at_fault"]:
            g, k = fault_kind(flt)
            remaining[(flt["kind"], g, k)] += 1
            ks.add((flt["kind"], g, k))
        for k in ks:
            remaining_answers[k] += 1
        r.setdefault("cf", {})[f"{'strict' if own is OWN_STRICT else 'mood_own'}{'_broad' if broad else ''}{'_surgical' if keep_own == 'surgical' else '_keepown' if keep_own else ''}"] = {
            "text": text, "faithful": f["faithful"], "faults": s["at_fault"]}
    lo, hi = wilson(faithful, judged)
    return {"faithful": faithful, "judged": judged, "n": len(rows), "rate": round(faithful / judged, 4) if judged else None,
            "wilson95": [lo, hi], "sentences_dropped": dropped, "sentences_not_found": missing,
            "per_task_faithful/judged": {t: v for t, v in per_task.items()},
            "remaining_faults": sorted(([list(k), remaining_answers[k], v] for k, v in remaining.items()),
                                       key=lambda x: -x[2])}


QA_RE = re.compile(r"(?i)\b(?:qa|quality score)\b[^0-9\n]{0,12}(\d{1,3})\s*/\s*100")
CSAT_RE = re.compile(r"(?i)\bcsat\b[^0-9\n]{0,12}([0-5])\s*/\s*5")


def _explicit(text: str, labels: dict) -> dict:
    """Explicit label-value statements in a chain body (the part before 'Final answer:')."""
    body = text.split("Final answer:")[0]
    low = body.lower()
    out = Counter()
    out["quality"] = len(QA_RE.findall(body))
    out["csat"] = len(CSAT_RE.findall(body))
    out["churn"] = len(re.findall(r"churn risk is (?:low|medium|high)", low))
    rc = labels.get("root_cause")
    out["root_cause"] = low.count("called about " + tasks.humanize(rc).lower()) if rc else 0
    out["coaching"] = len(re.findall(r"coach the agent on |critical issue was the agent's ", low))
    out["sentiment"] = sum(low.count(p.lower()) for p in (
        "grew more frustrated as the call went on", "was frustrated throughout the call",
        "was upset at the start and only a little calmer", "started out calm but grew impatient",
        "stayed neutral", "started out annoyed and ended the call calmer",
        "was delighted at first and still pleased", "was positive throughout the call",
        "started out concerned and ended the call satisfied"))
    return out


def explicit_values_chains(crow) -> dict:
    tot, other, own = Counter(), 0, 0
    n = 0
    for c in crow:
        if c["split"] != "train":
            continue
        n += 1
        e = _explicit(c["text"], json.loads(c["labels"]))
        tot.update(e)
        for k, v in e.items():
            if k == c["task"]:
                own += v
            else:
                other += v
    return {"n": n, "per_chain_by_label": {k: round(v / n, 2) for k, v in tot.items()},
            "per_chain_other_task": round(other / n, 2), "per_chain_own_task": round(own / n, 2)}


def figure_accuracy(rows) -> dict:
    qa_exact = qa_10 = qa_n = cs_exact = cs_n = 0
    qa_diffs = []
    for r in rows:
        body = r["text"].split("Final answer:")[0]
        for m in QA_RE.finditer(body):
            v = int(m.group(1)); qa_n += 1
            d = abs(v - r["labels"]["quality"]); qa_diffs.append(d)
            qa_exact += d == 0; qa_10 += d <= 10
        for m in CSAT_RE.finditer(body):
            cs_n += 1; cs_exact += int(m.group(1)) == r["labels"]["csat"]
    qa_diffs.sort()
    return {"qa_figures": qa_n, "qa_exact": qa_exact, "qa_within_10": qa_10,
            "qa_median_abs_error": qa_diffs[len(qa_diffs) // 2] if qa_diffs else None,
            "csat_figures": cs_n, "csat_exact": cs_exact}


def base_as_if(rows) -> dict:
    """Not the evaluation's measure: the base answers have no sections, so the checks read nothing.
    Here each answer is wrapped in <thinking>...</thinking> so the same checks read its sentences."""
    out = []
    for r in rows:
        body = r["text"].split("Final answer:")[0]
        wrapped = "<thinking>\n" + body.replace("<", " ").replace(">", " ") + "\n</thinking>"
        s = score_answer({"task": r["task"], "labels": r["labels"], "transcript": r["transcript"]}, wrapped)
        out.append({"task": r["task"], "faults": s["at_fault"], "faith": s["faithfulness"]})
    judged = [o for o in out if o["faith"]["judged"]]
    k = sum(1 for o in judged if o["faith"]["faithful"])
    return {"judged": len(judged), "faithful": k, "wilson95": wilson(k, len(judged)),
            "with_contradiction": sum(1 for o in out if o["faith"]["contradictions"]),
            "with_invented": sum(1 for o in out if o["faith"]["invented"]),
            "breakdown": breakdown(out)}


def main() -> None:
    evals = {r["id"]: r["model"] for r in db.execute("SELECT id, model FROM evaluations")}
    tuned_id = next(i for i, m in evals.items() if m.startswith("run:"))
    base_id = next(i for i, m in evals.items() if not m.startswith("run:"))
    result = {"evaluations": evals}
    for name, eid in (("tuned", tuned_id), ("base", base_id)):
        rows = evaluation_rows(eid)
        agree = sum(1 for r in rows if r["stored"] and r["stored"].get("faithful") == r["faith"]["faithful"]
                    and r["stored"].get("contradictions") == r["faith"]["contradictions"]
                    and r["stored"].get("invented") == r["faith"]["invented"])
        judged = [r for r in rows if r["faith"]["judged"]]
        k = sum(1 for r in judged if r["faith"]["faithful"])
        out = {"n": len(rows), "judged": len(judged), "faithful": k, "rate": round(k / len(judged), 4) if judged else None,
               "wilson95": wilson(k, len(judged)), "rescore_matches_stored": agree,
               "with_contradiction": sum(1 for r in rows if r["faith"]["contradictions"]),
               "with_invented": sum(1 for r in rows if r["faith"]["invented"]),
               "breakdown": breakdown(rows), "breakdown_strict": breakdown(rows, OWN_STRICT)}
        prof = [sentence_profile(r["text"], r["task"], r["transcript"], r["labels"]) for r in rows]
        out["sentences_per_answer"] = {
            "mean_sentences": round(sum(p["sentences"] for p in prof) / len(prof), 2),
            "mean_other_label": round(sum(p["other"] for p in prof) / len(prof), 2),
            "mean_own_label_only": round(sum(p["own_only"] for p in prof) / len(prof), 2)}
        out["counterfactual_mood_own"] = counterfactual(rows, OWN)
        out["counterfactual_strict"] = counterfactual(rows, OWN_STRICT)
        out["counterfactual_mood_own_broad"] = counterfactual(rows, OWN, broad=True)
        out["counterfactual_mood_own_keepown"] = counterfactual(rows, OWN, keep_own=True)
        out["counterfactual_strict_keepown"] = counterfactual(rows, OWN_STRICT, keep_own=True)
        out["counterfactual_mood_own_surgical"] = counterfactual(rows, OWN, keep_own="surgical")
        result[name] = out
        with open(f"{OUT}/{name}_rows.json", "w") as fh:
            json.dump([{k: v for k, v in r.items() if k != "transcript"} for r in rows], fh, indent=1, default=list)

    # training chains
    crow = list(db.execute(
        "SELECT c.id, c.text, c.criteria, c.score, e.task, e.labels, e.transcript, e.split FROM chains c "
        "JOIN examples e ON e.id = c.example_id ORDER BY c.id"))
    for split in ("train", "validation"):
        rows, profs = [], []
        stored_faults = 0
        for c in crow:
            if c["split"] != split:
                continue
            labels = json.loads(c["labels"])
            q = score_chain(c["text"], c["task"], labels, c["transcript"])
            from engine.chains.quality import at_fault
            faults = at_fault(q["criteria"])
            stored_faults += len(at_fault(json.loads(c["criteria"])))
            rows.append({"task": c["task"], "faults": faults, "faith": answer_faithfulness(q)})
            p = sentence_profile(c["text"], c["task"], c["transcript"], labels)
            pb = sentence_profile(c["text"], c["task"], c["transcript"], labels, broad=True)
            ps = sentence_profile(c["text"], c["task"], c["transcript"], labels, own=OWN_STRICT)
            profs.append((c["task"], p, pb, ps))
        n = len(rows)
        k = sum(1 for r in rows if r["faith"]["faithful"])
        per_task = defaultdict(list)
        for t, p, pb, ps in profs:
            per_task[t].append((p, pb, ps))
        group_tot = Counter()
        for _, p, _, _ in profs:
            group_tot.update(p["by_group"])
        result[f"chains_{split}"] = {
            "n": n, "faithful": k, "stored_faults": stored_faults, "breakdown": breakdown(rows),
            "mean_sentences": round(sum(p["sentences"] for _, p, _, _ in profs) / n, 2),
            "mean_other_label_sentences": round(sum(p["other"] for _, p, _, _ in profs) / n, 2),
            "mean_other_label_sentences_broad": round(sum(pb["other"] for _, _, pb, _ in profs) / n, 2),
            "mean_other_label_sentences_strict": round(sum(ps["other"] for _, _, _, ps in profs) / n, 2),
            "mean_own_only_sentences": round(sum(p["own_only"] for _, p, _, _ in profs) / n, 2),
            "share_other": round(sum(p["other"] for _, p, _, _ in profs) / sum(p["sentences"] for _, p, _, _ in profs), 3),
            "share_other_broad": round(sum(pb["other"] for _, _, pb, _ in profs) / sum(p["sentences"] for _, p, _, _ in profs), 3),
            "min_max_other": [min(p["other"] for _, p, _, _ in profs), max(p["other"] for _, p, _, _ in profs)],
            "sentences_touching_group_total": dict(group_tot),
            "per_task": {t: {"n": len(v), "mean_sentences": round(sum(x[0]["sentences"] for x in v) / len(v), 1),
                             "mean_other": round(sum(x[0]["other"] for x in v) / len(v), 1),
                             "mean_other_broad": round(sum(x[1]["other"] for x in v) / len(v), 1),
                             "mean_own_only": round(sum(x[0]["own_only"] for x in v) / len(v), 1)}
                         for t, v in sorted(per_task.items())},
        }
    result["explicit_values_train"] = explicit_values_chains(crow)
    result["figures_tuned"] = figure_accuracy(evaluation_rows(tuned_id))
    result["base_as_if_wrapped"] = base_as_if(evaluation_rows(base_id))
    with open(f"{OUT}/result.json", "w") as fh:
        json.dump(result, fh, indent=1, default=list)
    json.dump(result, sys.stdout, indent=1, default=list)


if __name__ == "__main__":
    main()
