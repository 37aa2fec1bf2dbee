"""The answer parser on the messy outputs small models really write.

``engine.data.tasks.parse_answer`` is strict; ``engine.evaluation.scoring.parse_prediction`` (what evaluation
uses) adds a normalisation pass for markdown and bullet lists. Both are checked here: the strict
parser where it already copes, the wrapper where it does not.
"""

from __future__ import annotations

import pytest

from engine.data import tasks
from engine.chains.chain import render_chain
from engine.evaluation.scoring import parse_prediction

CASES = [
    # (task, model text, expected parse)
    ("csat", "CSAT: 4", {"csat": 4}),
    ("csat", "**CSAT:** 4/5", {"csat": 4}),
    ("csat", "**CSAT**: 2/5", {"csat": 2}),
    ("csat", "CSAT Score: 3 out of 5", {"csat": 3}),
    ("csat", "CSAT (1-5): 2", {"csat": 2}),
    ("csat", "Predicted CSAT: 4.0/5", {"csat": 4}),
    ("csat", "`CSAT: 5/5`", {"csat": 5}),
    ("csat", "Early guess CSAT: 2/5 ... after the resolution, CSAT: 4/5", {"csat": 4}),  # the last one wins
    ("csat", "CSAT: 6/5", None),                          # out of range is not an answer
    ("csat", "The customer was happy overall.", None),
    ("csat", "", None),
    ("quality", "QA score: 87/100", {"quality": 87}),
    ("quality", "**QA Score**: 64", {"quality": 64}),
    ("quality", "Quality score: 120/100", None),
    ("churn", "Churn risk: Medium", {"churn": "medium"}),
    ("churn", "**Churn risk**: high", {"churn": "high"}),
    ("churn", "__Churn Risk__ - LOW.", {"churn": "low"}),
    ("churn", "Churn risk is probably fine", None),
    ("sentiment", "Customer sentiment: Negative; Trajectory: Improving",
     {"sentiment": "negative", "sentiment_trajectory": "improving"}),
    ("sentiment", "**Customer sentiment**: positive; **trajectory**: stable",
     {"sentiment": "positive", "sentiment_trajectory": "stable"}),
    ("sentiment", "Sentiment: negative -> improving", {"sentiment": "negative"}),  # trajectory not given
    ("sentiment", "Sentiment: mixed", None),
    ("root_cause", "Root cause: Billing dispute", {"root_cause": "billing_dispute"}),
    ("root_cause", "**Root Cause:** technical-issue.", {"root_cause": "technical_issue"}),
    ("root_cause", "Root cause: the weather", None),
    ("coaching", "Coaching focus: empathy, hold etiquette", {"coaching": ["empathy", "hold_etiquette"]}),
    ("coaching", "Coaching focus:\n- Empathy\n- Call closing\n", {"coaching": ["empathy", "call_closing"]}),
    ("coaching", "Coaching focus:\n1. ownership\n2. compliance", {"coaching": ["ownership", "compliance"]}),
    ("coaching", "Coaching focus: none needed, great call", {"coaching": []}),
    ("coaching", "Coaching focus: None.", {"coaching": []}),
    ("coaching", "Coaching focus: better vibes", None),
    # The instruction's placeholders echoed back are not answers (the embedded model does this).
    ("csat", "CSAT: 1-5\nCustomer satisfaction: 5\nCustomer satisfaction: 4", None),
    ("csat", "CSAT: <1-5>/5\nThe hold was long. CSAT: 2/5", {"csat": 2}),
    ("quality", "QA score: <0-100>/100", None),
    ("quality", "QA score: 0-100", None),
    ("churn", "Churn risk: low|medium|high", None),
    ("churn", "Churn risk: <low|medium|high>\nChurn risk: medium", {"churn": "medium"}),
]


@pytest.mark.parametrize("task,text,expected", CASES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(CASES)])
def test_parse_prediction(task, text, expected):
    assert parse_prediction(task, text) == expected


def test_the_one_parser_reads_markdown_keys_and_refuses_echoed_scales():
    # One parser for evaluation and the quality scorer, so both read an answer the same way.
    for task, text, want in (("churn", "**Churn risk**: high", {"churn": "high"}),
                             ("coaching", "Coaching focus:\n- empathy\n- ownership", {"coaching": ["empathy", "ownership"]}),
                             ("csat", "CSAT (1-5): 2", {"csat": 2})):
        assert tasks.parse_answer(task, text) == want
        assert parse_prediction(task, text) == want
    assert tasks.parse_answer("csat", "CSAT: 1-5") is None
    assert tasks.parse_answer("churn", "Churn risk: low|medium|high") is None


def test_answer_at_the_end_of_a_reasoning_chain_wins_over_mentions_inside_it():
    chain = render_chain(
        {1: "The customer sounded like a CSAT: 1/5 at first because of the long hold.",
         2: "Polite.", 3: "Smooth.", 4: "Billing.", 5: "Churn risk: high if unresolved."},
        {"Quality Metrics": "QA score: 40/100 before the fix"}, {}, "CSAT: 4/5")
    assert parse_prediction("csat", chain) == {"csat": 4}
    assert parse_prediction("quality", chain) == {"quality": 40}  # the only QA line is inside the chain


def test_every_reference_answer_line_round_trips():
    samples = {"csat": {"csat": 3}, "quality": {"quality": 55}, "churn": {"churn": "medium"},
               "sentiment": {"sentiment": "neutral", "sentiment_trajectory": "worsening"},
               "root_cause": {"root_cause": "fraud_concern"}, "coaching": {"coaching": ["de_escalation"]}}
    for task, labels in samples.items():
        assert parse_prediction(task, "Some reasoning.\n" + tasks.answer_line(task, labels)) == labels


def test_long_runs_of_blanks_parse_in_linear_time():
    """A model (or a file given to `ccr score`) can write huge runs of blanks. Before blanks were
    collapsed, "CSAT:" and 40,000 spaces took 75 s (quadratic backtracking), so the million-character
    inputs below would hang the suite for hours; collapsed, each parses in well under a second.
    No time is asserted: a regression shows as a suite that does not finish."""
    blank_runs = [" " * 1_000_000, "\n" * 1_000_000, " \n\t" * 300_000, "\t" * 1_000_000]
    for run in blank_runs:
        for task in tasks.TASKS:
            assert parse_prediction(task, "CSAT:" + run) is None
            assert tasks.parse_answer(task, "QA score:" + run + "Churn risk:" + run) is None
    assert tasks.parse_answer("csat", "CSAT:" + " " * 1_000_000 + "4/5") == {"csat": 4}
    assert tasks.parse_answer("churn", "Churn risk:\n\n\n   \n high") == {"churn": "high"}
