"""Prompt version 5 (``GenerateConfig.prompt_version``): the chain's own words state only the
example's own task label; version 4 (the default) is unchanged (tests/test_prompt.py)."""

from __future__ import annotations

import re
import types

import pytest

from engine.chains import prompt as P
from engine.chains import quality, teacher
from engine.chains.chain import ANALYSIS_PARTS, INSIGHT_PARTS, STEPS
from engine.core.config import GenerateConfig, load_config
from tests.test_prompt import LABEL_GRID, example

TASKS = ("csat", "quality", "churn", "sentiment", "root_cause", "coaching")
LABELS = {"csat": 2, "quality": 45, "churn": "high", "sentiment": "negative", "sentiment_trajectory": "worsening",
          "root_cause": "billing_dispute", "coaching": ["empathy", "identity_verification"]}

# What would state each task's label value in chain text: its figure, its level, its words.
_MOODS = r"frustrat\w*|upset|unhappy|dissatisfied|satisfied|pleased|positive|negative|neutral|calmer|annoyed|angry"
STATES = {
    "csat": re.compile(r"\bCSAT\b|\b\d/5\b|very dissatisfied|\bdissatisfied\b", re.I),
    "quality": re.compile(r"\bQA\b|/100\b|fell short|was uneven|did well|reasonably well|quality was (?:poor|mixed|high)", re.I),
    "churn": re.compile(r"\bchurn\b|\battrition\b|risk is (?:low|medium|high)", re.I),
    "sentiment": re.compile(rf"\b(?:{_MOODS})\b|sentiment", re.I),
    "root_cause": re.compile(r"called about|root cause|billing dispute", re.I),
    "coaching": re.compile(r"\bcoach\w*|empathy|identity verification", re.I),
}
# A CSAT example's mood is its own label too (the scorer reads moods against CSAT and sentiment).
OWN = {t: {t} for t in TASKS} | {"csat": {"csat", "sentiment"}}


_HEADERS = re.compile(r"^Step \d - .*$|^(?:" + "|".join(map(re.escape, ANALYSIS_PARTS + INSIGHT_PARTS)) + "):", re.M)


def skeleton(ex: dict, version: str) -> str:
    """The chain a teacher that writes nothing after the lead-ins would give, without its headers
    ("Root Cause Analysis" names no label) and its final answer (the example's own label)."""
    specs = P.guided_prompts(ex, version)
    chain = P.assemble_guided(ex, {s["part"]: P.part_body(s["lead"], "") for s in specs})
    chain = chain[:chain.rindex("Final answer")]
    assert chain.count("Step ") == 5 and all(f"{p}:" in chain for p in ANALYSIS_PARTS + INSIGHT_PARTS)
    return _HEADERS.sub("", chain)


@pytest.mark.parametrize("task", TASKS)
def test_v5_lead_ins_state_no_other_task_label(task):
    ex = example(transcript="Agent: Hello.\nCustomer: My bill is wrong again.", task=task, labels=LABELS)
    leads = " ".join(s["lead"] for s in P.guided_prompts(ex, "5"))
    text = skeleton(ex, "5")
    for other, pattern in STATES.items():
        if other in OWN[task]:
            continue
        assert not pattern.search(leads), (task, other, pattern.search(leads))
        assert not pattern.search(text), (task, other, pattern.search(text))
    # v4 states them all, so the check above is not vacuous
    v4 = skeleton(ex, "4")
    assert all(p.search(v4) for o, p in STATES.items() if o not in OWN[task]), task


def test_v5_keeps_the_own_task_label():
    def leads(task):
        return [s["lead"] for s in P.guided_prompts(example(task=task, labels=LABELS), "5")]
    assert leads("quality")[1] == "The agent fell short (QA 45/100) because"
    assert leads("quality")[5] == "QA score 45/100. This shows that"
    assert leads("csat")[5] == "CSAT 2/5. This shows that"
    assert leads("churn")[4] == "Business impact: churn risk is high because"
    assert leads("root_cause")[3] == "The customer called about billing dispute because"
    assert leads("coaching")[9].startswith("Coach the agent on empathy")
    assert leads("sentiment")[0] == leads("csat")[0] == "The customer grew more frustrated as the call went on because"
    assert leads("churn")[0] == "The customer's own words show"


def test_v5_prompts_keep_the_shape_and_the_context():
    ex = example(task="churn", labels=LABELS)
    v4, v5 = P.guided_prompts(ex), P.guided_prompts(ex, "5")
    assert [s["part"] for s in v5] == [s["part"] for s in v4] == list(STEPS + ANALYSIS_PARTS + INSIGHT_PARTS)
    shared = P.shared_prefix(ex, "5")
    assert shared.startswith(P.context(ex)) and "do not restate the known facts" in shared
    assert all(s["messages"][1]["content"].startswith(shared) for s in v5)
    assert "Known facts:" in shared        # the teacher still reads every label
    assert P.guided_prompts(ex, "4") == v4 and P.free_messages(ex, "4") == P.free_messages(ex)
    assert "state only the task's own label" in P.free_messages(ex, "5")[1]["content"]
    with pytest.raises(ValueError):
        P.guided_prompts(ex, "6")


def test_v5_lead_ins_contradict_no_label():
    """As for v4 (tests/test_prompt.py): whatever the model writes after them, the lead-ins start
    every part true to the call, for every task and combination of labels."""
    for task in TASKS:
        for labels in LABEL_GRID[::5]:
            ex = example(transcript="Customer: hello.", task=task, labels=labels)
            bodies = {s["part"]: s["lead"] + " the call went as described." for s in P.guided_prompts(ex, "5")}
            r = quality.score_chain(P.assemble_guided(ex, bodies), task, labels, ex["transcript"])
            assert r["criteria"]["consistency"]["faults"] == [], (task, labels)
            assert r["criteria"]["grounding"]["faults"] == [], (task, labels)


def test_prompt_key_follows_the_configured_version():
    default = load_config(GenerateConfig, None, [])   # v5 is the default since the demo's run 3
    assert default.prompt_version == "5" and teacher.prompt_key(default) == "5-guided"
    v4 = load_config(GenerateConfig, None, ["prompt_version=4"])
    assert v4.prompt_version == "4" and teacher.prompt_key(v4) == "4-guided"
    assert teacher.prompt_key(load_config(GenerateConfig, None, ["prompt_version=5", "guided=false"])) == "5-free"
    # a config without the field (an older caller) keeps the module's version
    assert teacher.prompt_key(types.SimpleNamespace(guided=True)) == f"{P.PROMPT_VERSION}-guided"
