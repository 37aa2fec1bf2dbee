"""Faithfulness in the scorer: label consistency and grounding, across the six tasks.

Three calls (an angry customer and a weak agent, a happy customer and a strong agent, an annoyed
customer whose problem gets fixed) each have one faithful chain; for each of the six tasks a
variant contradicts the labels the task is about, and another invents specifics. Then negation
and hedging one sentence at a time, the issue's own examples, and a property: rephrasing text
that asserts nothing never lowers a faithful chain's score.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine.chains import analysis  # noqa: E402
from engine.chains import quality as q  # noqa: E402
from engine.chains.transcript import _transcript_info  # noqa: E402
from engine.chains.vocabulary import _SIGNAL, _STOP  # noqa: E402
from engine.chains.chain import parse_chain, render_chain  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Three calls and their faithful chains

ANGRY = """Agent: Yeah, Skyline Wireless.
Customer: This is the third time I'm calling. My bill is $45.50 higher than usual and nobody has fixed it.
Agent: Okay, let me just look at that.
Customer: I've been with you for 6 years and I'm sick of this.
Agent: Look, that's not my problem, I just read what's on the screen.
Customer: Excuse me? Don't talk to me like that. Vertex Mobile offered me a better deal last week.
Agent: I'm afraid I can't fix this today.
Customer: Then I'm switching to Vertex Mobile. This has been a complete waste of time.
Agent: Okay. Bye."""
ANGRY_LABELS = {"csat": 1, "quality": 45, "churn": "high", "sentiment": "negative",
                "sentiment_trajectory": "worsening", "root_cause": "billing_dispute",
                "coaching": ["empathy", "ownership", "de_escalation", "call_closing"]}
ANGRY_CHAIN = render_chain({
    1: "The customer was angry from the start because this is her third call about a bill that is $45.50 "
       "higher than usual. Her frustration grew when the agent said it was not his problem, and she ended the "
       "call threatening to switch to Vertex Mobile.",
    2: "The agent performed poorly: he skipped the greeting, dismissed the complaint as not his problem and "
       "offered no apology or empathy. He never took ownership of the billing error and closed the call abruptly.",
    3: "The interaction quality was low because the issue was left unresolved on the third contact, the tone "
       "was dismissive and the closing was a curt goodbye, so the customer left more upset than she arrived.",
    4: "The root cause is a billing dispute: an unexplained $45.50 increase that earlier contacts failed to "
       "correct, made worse by an agent who would not own the problem.",
    5: "Churn risk is high because a six-year customer with a competitor offer from Vertex Mobile is leaving "
       "angry; losing her recurring revenue and the cost of three contacts make this call expensive.",
}, {
    "Quality Metrics": "Third contact, unresolved, no empathy statement, abrupt closing; QA score 45/100.",
    "Key Strengths": "The agent at least said plainly that he could not fix the bill today instead of promising "
                     "something false.",
    "Critical Issues": "A dismissive reply to an angry repeat caller, no ownership of the billing error and no "
                       "retention attempt.",
    "Patterns & Trends": "Repeat billing complaints that stay unresolved turn loyal customers into churn threats.",
}, {
    "Immediate Coaching": "Coach the agent on empathy and de-escalation, and on owning billing errors instead of "
                          "deflecting them.",
    "Process Improvements": "Route third-contact billing disputes straight to a billing specialist who can correct "
                            "the charge on the call.",
    "Business Actions": "Call the customer back today with a corrected bill and a retention offer to reduce churn "
                        "and protect revenue.",
    "Strategic Insights": "Track repeat billing contacts per account, because each one raises cost to serve and "
                          "churn risk.",
}, "The customer was angry, the agent dismissive and the bill unresolved after three calls.\n{answer}")

HAPPY = """Agent: Thank you for calling Harbor Bank, my name is Dana. How can I help you today? Please note calls are recorded for quality purposes.
Customer: Hi Dana, it's Grace Okafor. I'd like to switch my checking account to the one without a monthly fee.
Agent: Of course. For security, can you confirm your date of birth and postcode?
Customer: Sure, 4 May 1990, N1 2AB.
Agent: Thank you, you're verified. The Everyday account has no monthly fee and keeps your card and direct debits.
Customer: That sounds perfect. Will my card number change?
Agent: No, your card stays the same. I've switched you now, and you'll get a confirmation letter within 5 working days.
Customer: Brilliant, thank you so much, that was easy.
Agent: Is there anything else I can help with today?
Customer: No, that's everything. Thanks, Dana!
Agent: Thank you for calling Harbor Bank, Grace. Have a lovely evening."""
HAPPY_LABELS = {"csat": 5, "quality": 96, "churn": "low", "sentiment": "positive", "sentiment_trajectory": "stable",
                "root_cause": "plan_change", "coaching": []}
HAPPY_CHAIN = render_chain({
    1: "The customer was calm and purposeful from the start because she knew which account she wanted, and she "
       "stayed positive throughout, thanking Dana warmly at the end of the call.",
    2: "Dana handled the call well: she greeted the customer with her name and the bank's, gave the recording "
       "notice, verified identity before touching the account and explained the Everyday account clearly. She "
       "answered the card question before the customer had to worry about it.",
    3: "The interaction quality was high because the plan change was completed in one contact, with no hold and "
       "no transfer, and the closing confirmed the letter and offered further help.",
    4: "The root cause was a plan change request: the customer wanted a checking account without a monthly fee, "
       "and the agent could switch it herself on the call.",
    5: "Churn risk is low because a satisfied customer who moved to a fee-free account has fewer reasons to leave, "
       "and the first-contact resolution kept handle time and cost to serve low.",
}, {
    "Quality Metrics": "Greeting, disclosure, verification, explanation and closing all met; no hold or transfer; "
                       "resolved in one contact.",
    "Key Strengths": "Clear explanation of the fee-free account and a proactive answer about the card number.",
    "Critical Issues": "Nothing of substance; the agent could have said when the first fee-free month starts.",
    "Patterns & Trends": "Fee-free account switches resolve quickly when agents can make the change themselves.",
}, {
    "Immediate Coaching": "Recognise Dana's call as a model for plan changes and share it in the next team huddle.",
    "Process Improvements": "Add the fee-free start date to the account switch screen so agents can quote it on "
                            "every call.",
    "Business Actions": "Send the customer a short welcome note for the new account to reinforce retention and "
                        "loyalty.",
    "Strategic Insights": "Promote self-service account switching in the app, because simple plan changes cost "
                          "more on the phone than online.",
}, "The plan change was done in one contact by an agent who met every rubric item.\n{answer}")

MIXED = """Agent: Good morning, Skyline Wireless, you're speaking with Owen.
Customer: Hi. My router keeps dropping the connection every evening and I'm getting really annoyed. This is my second call about it.
Agent: I'm sorry about that. Can I have the phone number on the account?
Customer: It's 07700 900123.
Agent: Thanks. Hold on.
Customer: Okay.
Agent: Okay, I'm back. I can see the router is on old firmware. I'll push an update now and restart it.
Customer: Okay. It's restarting... the lights are green now.
Agent: Great. If it drops again tonight, call us back and we'll send an engineer.
Customer: Fine. Let's hope that's it.
Agent: Right, that's it then."""
MIXED_LABELS = {"csat": 3, "quality": 72, "churn": "medium", "sentiment": "neutral",
                "sentiment_trajectory": "improving", "root_cause": "technical_issue", "coaching": ["hold_etiquette"]}
MIXED_CHAIN = render_chain({
    1: "The customer opened annoyed because the router had been dropping the connection every evening and this "
       "was her second call. She calmed down once the update restarted the router, ending the call cautiously "
       "relieved rather than happy.",
    2: "Owen apologised and verified the account promptly, and he found the outdated firmware quickly. However, "
       "he put the customer on hold without asking permission or explaining why, which is a hold etiquette gap.",
    3: "The interaction quality was mixed because the technical fix was quick, but the unexplained hold and the "
       "abrupt closing left the customer unsure the problem was really solved.",
    4: "The root cause is a technical issue: outdated router firmware caused the evening dropouts, and the first "
       "call had not found it.",
    5: "Churn risk is medium because the fix is not yet proven and this is a repeat contact; another dropout "
       "would mean a third call, more cost to serve and a real chance that the customer leaves.",
}, {
    "Quality Metrics": "Second contact, one hold without permission, fix applied on the call, abrupt closing.",
    "Key Strengths": "Quick diagnosis of the firmware problem and a clear next step if the dropouts return.",
    "Critical Issues": "The hold was not explained and the closing skipped a proper goodbye.",
    "Patterns & Trends": "Firmware-related dropouts lead to repeat calls when the first agent does not check the "
                         "router version.",
}, {
    "Immediate Coaching": "Coach Owen to ask permission before every hold and to say how long it will take.",
    "Process Improvements": "Add a firmware version check to the first-call troubleshooting script so repeat "
                            "contacts are avoided.",
    "Business Actions": "Send an automatic check-in message the next evening to confirm the connection held, "
                        "protecting retention and cutting repeat calls.",
    "Strategic Insights": "Push firmware updates to routers remotely, because each evening dropout drives repeat "
                          "contacts and churn risk.",
}, "An annoyed repeat caller got a working fix, but the hold and closing were handled poorly.\n{answer}")

CALLS = {"angry": (ANGRY, ANGRY_LABELS, ANGRY_CHAIN), "happy": (HAPPY, HAPPY_LABELS, HAPPY_CHAIN),
         "mixed": (MIXED, MIXED_LABELS, MIXED_CHAIN)}

ANSWERS = {"csat": "CSAT: {csat}/5", "quality": "QA score: {quality}/100", "churn": "Churn risk: {churn}",
           "sentiment": "Customer sentiment: {sentiment}; trajectory: {sentiment_trajectory}",
           "root_cause": "Root cause: {root_cause}",
           "coaching": "Coaching focus: {coaching_line}"}


def chain_for(call: str, task: str) -> tuple[str, dict, str]:
    """(chain, labels, transcript) of ``call`` with the final answer of ``task``."""
    transcript, labels, chain = CALLS[call]
    line = ANSWERS[task].format(coaching_line=", ".join(labels["coaching"]) or "none", **labels)
    return chain.replace("{answer}", line), labels, transcript


def score(call: str, task: str, text: str | None = None, labels: dict | None = None) -> dict:
    chain, call_labels, transcript = chain_for(call, task)
    return q.score_chain(chain if text is None else text, task, call_labels if labels is None else labels, transcript)


def swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# For each task: the call it reads, a contradiction of the labels that task is about (the text
# replaced, its replacement, and words the fault's reason must contain), and invented specifics.
CASES = {
    "csat": ("angry",
             ("The customer was angry from the start because",
              "The customer ended the call satisfied because", "CSAT is 1/5"),
             [("higher than usual.", "higher than usual on her Unlimited Plus plan."),
              ("closed the call abruptly.", "closed the call abruptly at 4:45 pm on Friday.")]),
    "churn": ("angry",
              ("Churn risk is high because", "Churn risk is low because", "churn risk is low, but it is high"),
              [("The agent performed poorly:", "The agent, Sarah, performed poorly:"),
               ("a curt goodbye,", "a curt goodbye after a 20 minute hold,")]),
    "quality": ("happy",
                ("Dana handled the call well:", "Dana was rude and unprofessional:", "QA score is 96/100"),
                [("explained the Everyday account clearly.",
                  "explained the Everyday account clearly and promised a $25 welcome bonus."),
                 ("thanking Dana warmly", "thanking Dana warmly over live chat")]),
    "root_cause": ("happy",
                   ("The root cause was a plan change request: the customer wanted",
                    "The root cause was fraud: someone made unauthorised payments, and the customer wanted",
                    "root cause is plan change"),
                   [("a checking account without a monthly fee", "a Platinum Rewards card without a monthly fee"),
                    ("The root cause was a plan change", "On 12 March the root cause was a plan change")]),
    "sentiment": ("mixed",
                  ("She calmed down once the update restarted the router, ending the call cautiously relieved "
                   "rather than happy.",
                   "Her mood worsened as the call went on and she ended the call furious.",
                   "trajectory is improving"),
                  [("this was her second call.", "this was her second call since Monday."),
                   ("and he found the outdated firmware quickly.",
                    "and he found the outdated firmware quickly using the Netgear app.")]),
    "coaching": ("mixed",
                 ("which is a hold etiquette gap.", "and he showed excellent hold etiquette throughout.",
                  "hold etiquette, a coaching area"),
                 [("The root cause is a technical issue:", "The root cause, logged by Priya Shah, is a technical issue:"),
                  ("the first call had not found it.", "the first call, 5 days earlier, had not found it.")]),
}


@pytest.mark.parametrize("task", list(CASES))
def test_faithful_chain_keeps_its_score(task):
    r = score(CASES[task][0], task)
    assert r["score"] >= 80, r["criteria"]
    f = r["faithfulness"]
    assert q.passes(r) and (f["contradictions"], f["invented"], f["faithful"], f["checked"]) == (0, 0, True, True)
    assert f["sentences"] >= 13  # the checks read every step and part
    assert r["criteria"]["consistency"]["points"] == 0 and r["criteria"]["grounding"]["points"] == 0
    assert q.reasons(r["criteria"]) == []
    assert abs(sum(c["points"] for c in r["criteria"].values()) - r["score"]) < 1e-6


@pytest.mark.parametrize("task", list(CASES))
def test_contradicting_chain_never_passes(task):
    call, (old, new, why), _ = CASES[task]
    chain = swap(chain_for(call, task)[0], old, new)
    r = score(call, task, chain)
    assert r["score"] < 60 and not q.passes(r), (r["score"], r["criteria"]["consistency"])
    faults = r["criteria"]["consistency"]["faults"]
    assert faults and all(f["kind"] == "contradiction" for f in faults)
    # The fault names the sentence that was changed, and says why.
    hit = [f for f in faults if new.split(":")[0].split(",")[0][:25] in f["sentence"]]
    assert hit and any(why in f["reason"] for f in hit), faults
    assert "contradiction" in q.reasons(r["criteria"])
    # The form criteria alone still pass: the chain fails because of what it says.
    form = sum(c["points"] for k, c in r["criteria"].items() if k in q.FORM_CRITERIA)
    assert form >= 80


@pytest.mark.parametrize("task", list(CASES))
def test_inventing_chain_does_not_pass_and_names_each_specific(task):
    call, _, edits = CASES[task]
    chain = chain_for(call, task)[0]
    for old, new in edits:
        chain = swap(chain, old, new)
    faithful = score(call, task)["score"]
    r = score(call, task, chain)
    faults = r["criteria"]["grounding"]["faults"]
    assert len(faults) >= 2 and r["score"] < 70 and not q.passes(r), (r["score"], faults)
    assert r["score"] < faithful
    assert q.reasons(r["criteria"]) == ["invented"]
    for f in faults:
        assert f["kind"] == "invented" and f["sentence"] in chain and f["reason"]
    # One unsupported specific costs points but does not fail the chain alone.
    one = swap(chain_for(call, task)[0], *edits[0])
    r1 = score(call, task, one)
    assert len(r1["criteria"]["grounding"]["faults"]) == 1
    assert r1["criteria"]["grounding"]["points"] == -q.INVENTED_POINTS and q.passes(r1)


def test_list_markers_are_not_specifics():
    chain = swap(chain_for("happy", "quality")[0], "Clear explanation of the fee-free account",
                 "The agent did well by: 1. Clear explanation of the fee-free account")
    assert score("happy", "quality", chain)["criteria"]["grounding"]["faults"] == []


def test_proposals_in_insights_may_name_new_channels_and_amounts():
    chain = swap(chain_for("angry", "churn")[0], "with a corrected bill and a retention offer",
                 "by email with a corrected bill and a $20 retention credit through the app")
    r = score("angry", "churn", chain)
    assert r["criteria"]["grounding"]["faults"] == [] and r["faithfulness"]["faithful"]
    # ...but not a person or a date that the call never had.
    chain = swap(chain, "Call the customer back today", "Have Sarah call the customer back on Monday")
    names = [f["reason"] for f in score("angry", "churn", chain)["criteria"]["grounding"]["faults"]]
    assert names == ["the name 'Sarah' is not in the transcript", "the date 'Monday' is not in the transcript"]


def test_without_transcript_or_labels_nothing_is_checked():
    chain = chain_for("angry", "churn")[0].replace("Churn risk is high because", "Churn risk is low because")
    r = q.score_chain(chain, "churn")
    assert r["criteria"]["consistency"]["points"] == 0 and "No labels" in r["criteria"]["consistency"]["reason"]
    assert "No transcript" in r["criteria"]["grounding"]["reason"]
    # One label is enough for the claims about it (imported data may carry only one).
    r = q.score_chain(chain, "churn", {"churn": "high"})
    assert r["score"] < 60 and [f["reason"] for f in r["criteria"]["consistency"]["faults"]] == [
        "says churn risk is low, but it is high"]


def test_transcript_decides_when_there_is_no_label():
    # No sentiment or CSAT label: the customer's last words (a waste of time, switching) decide.
    chain = swap(chain_for("angry", "churn")[0], "The customer was angry from the start because",
                 "The customer ended the call delighted because")
    r = q.score_chain(chain, "churn", {"churn": "high"}, ANGRY)
    assert [f["reason"] for f in r["criteria"]["consistency"]["faults"]] == [
        "says the customer was delighted at the end, but the customer's last words in the transcript are negative"]
    # A hold or transfer the transcript does (not) have.
    happy = chain_for("happy", "quality")[0]
    r = q.score_chain(swap(happy, "with no hold and no transfer", "after a long hold and a transfer"),
                      "quality", {"quality": 96}, HAPPY)
    assert [f["reason"] for f in r["criteria"]["consistency"]["faults"]] == [
        "describes a hold, but the transcript has none", "describes a transfer, but the transcript has none"]
    mixed = chain_for("mixed", "csat")[0]
    r = q.score_chain(swap(mixed, "one hold without permission", "no hold at all"), "csat", {"csat": 3}, MIXED)
    assert [f["reason"] for f in r["criteria"]["consistency"]["faults"]] == [
        "says there was no hold, but the transcript has one"]
    # an idiom is no hold
    r = q.score_chain(swap(happy, "with no hold and no transfer", "and nothing held the change back"),
                      "quality", {"quality": 96}, HAPPY)
    assert r["criteria"]["consistency"]["faults"] == []


# ----------------------------------------------------------------------------------------------
# Negation and hedging, one sentence at a time


def _step1(sentence: str) -> str:
    return render_chain({1: sentence}, {}, {}, "")


def contradictions(sentence: str, labels: dict, region: int = 1) -> list[str]:
    text = render_chain({region: sentence}, {}, {}, "")
    return [f["reason"] for f in analysis.analyse(text, labels=labels).contradictions]


@pytest.mark.parametrize("sentence, labels, expected", [
    # negation turns a positive word negative...
    ("The customer was not satisfied with the answer.", {"csat": 5, "sentiment": "positive",
                                                        "sentiment_trajectory": "stable"},
     ["says the customer was not satisfied, but the customer's sentiment is positive and stable"]),
    ("The customer was not satisfied with the answer.", {"csat": 1}, []),
    ("The customer was far from happy and never satisfied.", {"csat": 1}, []),
    # ...but a denied negative word asserts nothing
    ("There was no sign of frustration from the customer.", {"csat": 5, "sentiment": "positive",
                                                             "sentiment_trajectory": "stable"}, []),
    ("The customer was never angry or upset.", {"sentiment": "positive", "sentiment_trajectory": "stable"}, []),
    ("There was no sign of frustration from the customer.", {"csat": 1}, []),
    # hedged claims are not assertions
    ("The customer might become frustrated if the bill is wrong again.", {"csat": 5, "sentiment": "positive",
                                                                       "sentiment_trajectory": "stable"}, []),
    ("A faster fix would have left the customer delighted.", {"csat": 1}, []),
    # the start of the call is not labelled; the end is
    ("The customer was frustrated at first but relieved at the end.", {"csat": 4, "sentiment": "positive",
                                                                      "sentiment_trajectory": "improving"}, []),
    ("The customer was happy at first, but ended the call furious.", {"csat": 1, "sentiment": "negative",
                                                                     "sentiment_trajectory": "worsening"}, []),
    ("The customer was happy at first, but ended the call furious.", {"csat": 5},
     ["says the customer was furious at the end, but CSAT is 5/5"]),
    ("The customer was delighted with the refund.", {"csat": 2}, ["says the customer was delighted, but CSAT is 2/5"]),
    ("The customer was satisfied.", {"sentiment": "negative", "sentiment_trajectory": "improving"},
     ["says the customer was satisfied, but the customer's sentiment is negative"]),
    # an agent's calm is not the customer's mood
    ("The agent stayed calm and positive while the customer shouted.", {"csat": 1}, []),
    # "positive" and "negative" are moods only as predicates, not before a noun
    ("The customer was unhappy about the refund, which is a positive outcome overall.", {"csat": 1}, []),
    ("The customer was positive about the fix.", {"csat": 1}, ["says the customer was positive, but CSAT is 1/5"]),
    # a negation covers a list ("no friction or negative feedback")
    ("The customer ended the call delighted, with no friction or negative feedback.", {"csat": 5,
                                                                                      "sentiment": "positive"}, []),
])
def test_mood_negation_and_hedging(sentence, labels, expected):
    assert contradictions(sentence, labels) == expected


@pytest.mark.parametrize("sentence, labels, expected", [
    ("The agent performed exceptionally well.", {"quality": 20},
     ["praises the agent ('exceptionally'), but the QA score is 20/100"]),
    ("The agent did not perform exceptionally well.", {"quality": 20}, []),
    ("The agent performed exceptionally well.", {"quality": 88}, []),
    ("The agent performed well and was polite.", {"quality": 40},
     ["praises the agent ('performed well'), but the QA score is 40/100"]),
    ("The agent was rude to the customer.", {"quality": 92}, ["calls the agent 'rude', but the QA score is 92/100"]),
    ("The agent was never rude, only a little slow.", {"quality": 92}, []),
    ("The agent was rude to the customer.", {"quality": 30}, []),
    ("An excellent agent would have offered a callback.", {"quality": 30}, []),
])
def test_agent_praise_and_criticism_against_the_qa_band(sentence, labels, expected):
    assert contradictions(sentence, labels, region=2) == expected


@pytest.mark.parametrize("sentence, churn, expected", [
    ("Churn risk is low because the issue was fixed.", "high", ["says churn risk is low, but it is high"]),
    ("There is a high risk of churn after this call.", "low", ["says churn risk is high, but it is low"]),
    ("The customer is unlikely to churn after the refund.", "high", ["says churn risk is low, but it is high"]),
    ("The customer is likely to leave for a competitor.", "low", ["says churn risk is high, but it is low"]),
    ("Churn risk is not low, given the threat to leave.", "low", ["says churn risk is not low, but it is low"]),
    ("Churn risk is not low, given the threat to leave.", "high", []),
    ("Churn risk could be high if the fault returns.", "low", []),
    ("Churn risk is medium because the fix is unproven.", "high", []),
    ("Low satisfaction after repeated contacts increases churn risk.", "high", []),
])
def test_churn_claims(sentence, churn, expected):
    assert contradictions(sentence, {"churn": churn}, region=5) == expected


@pytest.mark.parametrize("sentence, labels, expected", [
    ("The root cause was a delivery problem with the parcel.", {"root_cause": "billing_dispute"},
     ["gives the cause as delivery problem, but the root cause is billing dispute"]),
    ("The root cause was a billing error that led to a refund request.", {"root_cause": "refund_request"}, []),
    ("The customer called about a refund for the late parcel.", {"root_cause": "delivery_problem"}, []),
    ("No coaching is needed; the agent followed the script.", {"coaching": ["empathy"]},
     ["says no coaching is needed, but the coaching areas are empathy"]),
    ("The agent showed genuine empathy.", {"coaching": ["empathy"]},
     ["credits the agent with empathy, a coaching area of this call"]),
    ("The agent should show more empathy.", {"coaching": ["empathy"]}, []),
    ("The agent showed no empathy at all.", {"coaching": ["empathy"]}, []),
    ("The agent skipped identity verification.", {"coaching": []},
     ["says verification was skipped, but identity verification is not a coaching area of this call (it was done)"]),
    ("The agent skipped identity verification.", {"coaching": ["identity_verification"]}, []),
    ("The agent verified the caller's identity first.", {"coaching": ["identity_verification"]},
     ["credits the agent with identity verification, a coaching area of this call"]),
    # what the customer did not do is no claim about the agent
    ("The customer did not verify their account before calling.", {"coaching": []}, []),
    ("He put the caller on hold, and he showed excellent hold etiquette.", {"coaching": ["hold_etiquette"]},
     ["credits the agent with hold etiquette, a coaching area of this call"]),
])
def test_root_cause_and_coaching_claims(sentence, labels, expected):
    assert contradictions(sentence, labels, region=2) == expected


def test_sentiment_and_figures_stated_in_the_body():
    labels = {"sentiment": "negative", "sentiment_trajectory": "improving", "csat": 2, "quality": 60}
    assert contradictions("Overall the customer sentiment was positive.", labels) == [
        "says the sentiment is positive, but it is negative"]
    assert contradictions("The customer's mood improved once the refund was confirmed.", labels) == []
    assert contradictions("The customer's mood worsened after the transfer.", labels) == [
        "says the customer's mood worsened, but the trajectory is improving"]
    assert contradictions("A CSAT of 4 is likely given the quick fix.", labels) == [
        "states CSAT 4, but it is 2/5"]
    assert contradictions("The QA score of 65 reflects the missed closing.", labels) == []
    assert contradictions("The QA score of 95 reflects a flawless call.", labels) == [
        "states a QA score of 95, but it is 60/100"]


# ----------------------------------------------------------------------------------------------
# The examples


def test_plan_shaped_chain_saying_delighted_excellent_low_churn_scores_below_60():
    """An angry customer who threatens to switch (CSAT 1, churn high, QA 45): a chain in the
    plan's exact shape whose body says delighted / excellent / churn low scored 87.6 before."""
    good, labels, transcript = chain_for("angry", "churn")
    bad = (good.replace("The customer was angry from the start because", "The customer was delighted throughout because")
           .replace("The agent performed poorly:", "The agent was excellent:")
           .replace("Churn risk is high because", "Churn risk is low because"))
    r = q.score_chain(bad, "churn", labels, transcript)
    assert r["score"] < 60 and not q.passes(r)
    reasons = [f["reason"] for f in r["criteria"]["consistency"]["faults"]]
    assert reasons == ["says the customer was delighted, but CSAT is 1/5 and the customer's sentiment is negative",
                       "praises the agent ('excellent'), but the QA score is 45/100",
                       "says churn risk is low, but it is high"]
    assert [f["region"] for f in r["criteria"]["consistency"]["faults"]] == ["step1", "step2", "step5"]
    assert "Step 1" in r["criteria"]["consistency"]["reason"] and "capped" in r["criteria"]["consistency"]["reason"]
    # Its form is as good as the faithful chain's.
    form = sum(c["points"] for k, c in r["criteria"].items() if k in q.FORM_CRITERIA)
    assert form >= 80 and q.score_chain(good, "churn", labels, transcript)["score"] >= 80


def test_good_chain_with_invented_amounts_products_agent_name_and_dates_scores_below_70():
    good, labels, transcript = chain_for("angry", "churn")
    invented = (good
                .replace("higher than usual.", "higher than usual, $89.99 instead of $44.49 on her Unlimited Plus plan.")
                .replace("The agent performed poorly:", "The agent, Sarah, performed poorly on 14 March:")
                .replace("made worse by an agent", "first billed on Monday, made worse by an agent"))
    r = q.score_chain(invented, "churn", labels, transcript)
    assert r["score"] < 70 and not q.passes(r)
    assert q.reasons(r["criteria"]) == ["invented"]
    said = " | ".join(f["reason"] for f in r["criteria"]["grounding"]["faults"])
    for specific in ("'$89.99'", "'$44.49'", "'Unlimited Plus'", "'Sarah'", "'14'", "'March'", "'Monday'"):
        assert specific in said, said
    assert r["faithfulness"]["invented"] == 7 and not r["faithfulness"]["faithful"]


# ----------------------------------------------------------------------------------------------
# Rephrasing what asserts nothing never lowers a faithful chain's score

# Word swaps in sentences that carry no claim: neither word is a claim word, a vocabulary word of
# any criterion, or in the transcript.
NEUTRAL_SWAPS = [("purposeful", "focused"), ("warmly", "kindly"), ("huddle", "meeting"),
                 ("proactive", "timely"), ("substance", "weight"), ("quote", "state"), ("briefly", "shortly")]


def _neutral(word: str) -> bool:
    return (word not in q.CLAIM_WORDS and word not in _SIGNAL and word not in _STOP
            and word not in _transcript_info(HAPPY).words)


def _reorder(chain: str, rng: random.Random) -> str:
    """Shuffle the sentences inside each step (a reader's order, not a claim)."""
    p = parse_chain(chain)
    steps = {}
    for s in p["steps"]:
        sentences = re.split(r"(?<=[.!?])\s+", s["body"])
        rng.shuffle(sentences)
        steps[s["n"]] = " ".join(sentences)
    return render_chain(steps, p["parts"]["analysis"], p["parts"]["insights"], p["final_answer"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(swaps=st.lists(st.sampled_from(NEUTRAL_SWAPS), unique=True), seed=st.integers(0, 10_000),
       task=st.sampled_from(["quality", "root_cause"]))
def test_rephrasing_neutral_text_never_lowers_a_faithful_score(swaps, seed, task):
    assert all(_neutral(a) and _neutral(b) for a, b in NEUTRAL_SWAPS)
    chain, labels, transcript = chain_for("happy", task)
    before = q.score_chain(chain, task, labels, transcript)
    text = chain
    for old, new in swaps:
        text = re.sub(rf"\b{old}\b", new, text)
    text = _reorder(text, random.Random(seed))
    after = q.score_chain(text, task, labels, transcript)
    assert after["faithfulness"]["faithful"]
    assert after["score"] >= before["score"], (swaps, seed)


# ----------------------------------------------------------------------------------------------
# Summaries and the breakdown's machine-readable faults


def test_summarize_reports_faithful_shares():
    rows = [score("angry", "churn"), score("angry", "churn", swap(chain_for("angry", "churn")[0], *CASES["churn"][1][:2])),
            score("happy", "quality", swap(chain_for("happy", "quality")[0], *CASES["quality"][2][0]))]
    s = q.summarize({"line": i, **r} for i, r in enumerate(rows))
    assert (s["share_contradiction"], s["share_invented"], s["share_faithful"]) == (0.3333, 0.3333, 0.3333)
    assert s["criteria"]["consistency"] < 0 and s["criteria"]["grounding"] < 0


def test_at_fault_reads_a_stored_breakdown():
    r = score("angry", "churn", swap(chain_for("angry", "churn")[0], *CASES["churn"][1][:2]))
    faults = q.at_fault(r["criteria"])
    assert faults and {"sentence", "reason", "kind", "region"} <= set(faults[0])
    assert q.at_fault({"steps": {"points": 20, "max": 20, "reason": "x"}}) == []   # scored before faithfulness
    assert q.at_fault(None) == []
