"""The chain parser and the quality scorer: each criterion, the gaming cases, files and summaries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402

from engine.chains import analysis, criteria  # noqa: E402
from engine.chains import quality as q  # noqa: E402
from engine.chains.chain import (  # noqa: E402
    ANALYSIS_PARTS,
    FINAL_ANSWER_HEADER,
    INSIGHT_PARTS,
    SECTIONS,
    STEPS,
    parse_chain,
    render_chain,
)
from engine.data.tasks import user_content  # noqa: E402

# ----------------------------------------------------------------------------------------------
# Fixtures: three genuine chains for three tasks, with their transcripts and labels.

TRANSCRIPT_CSAT = """Agent: Thank you for calling Northwind Mobile, this is Priya. How can I help you today?
Customer: Hi, I'm calling again about my bill. I was charged twice for the same month, $64.99 both times.
Agent: I'm sorry to hear that. Can I have your account number please?
Customer: It's 4471-220. This is the third time I've called about this.
Agent: Thank you. Let me put you on hold while I check the billing system.
Agent: Thanks for waiting. I can see the duplicate charge. I'll need to transfer you to the billing team to process the refund.
Customer: Another transfer? The last agent told me it was already fixed.
Agent: I understand. Transferring you now.
Billing: Hello, billing team. I can see the duplicate charge of $64.99 and I've issued the refund. It will appear in 5 to 7 business days.
Customer: Fine. I just hope I don't have to call a fourth time."""

CHAIN_CSAT = """<thinking>
Step 1 - Customer Sentiment Analysis
The customer opens already frustrated because this is her third call about the same duplicate $64.99 charge. Her patience drops further when she hears about another transfer, since the previous agent had told her it was fixed. She ends resigned rather than satisfied ("I just hope I don't have to call a fourth time").
Step 2 - Agent Performance Evaluation
Priya apologised and verified the account promptly, which is good practice. However, she placed the customer on hold without saying how long it would take, and she transferred the call instead of owning the refund. She never acknowledged the repeated contacts explicitly, so the customer felt unheard.
Step 3 - Interaction Quality Assessment
The interaction reached a resolution: billing issued the refund with a clear 5-7 business day timeline. The path was inefficient, with one hold and one transfer, which lengthened the call and forced the customer to repeat her story.
Step 4 - Root Cause Analysis
The root cause is a billing dispute over a duplicate charge that earlier contacts failed to correct. The frontline agent lacked refund authority, which led to the transfer and the extra effort for the customer.
Step 5 - Business Impact Analysis
Three contacts for one duplicate charge raise handle time and cost to serve for a single fix. Low satisfaction after repeated contacts increases churn risk for this account, and the refund delay may trigger a chargeback or complaint if it does not land within 7 days.
</thinking>
<analysis>
Quality Metrics: One hold, one transfer, third contact on the same issue; resolved on this call with a refund.
Key Strengths: Prompt apology and verification; the billing team gave a concrete refund timeline.
Critical Issues: No hold expectation was set, no ownership of the repeat contact, and an avoidable transfer.
Patterns & Trends: Duplicate-charge disputes keep returning because first-contact fixes are not being completed.
</analysis>
<insights>
Immediate Coaching: Coach Priya to acknowledge repeat contacts in her first response and to state the expected hold length before placing callers on hold.
Process Improvements: Give frontline agents authority to refund duplicate charges under $100 so these calls close without a transfer.
Business Actions: Send a proactive confirmation message when the $64.99 refund posts, and review this account for a goodwill credit to protect retention.
Strategic Insights: Track the duplicate-charge defect in the billing system as a root-cause ticket, because every recurrence adds repeat calls and lowers first-contact resolution.
</insights>
Final answer:
The customer needed three contacts and a transfer to get a duplicate charge refunded, so satisfaction is low despite the eventual fix.
CSAT: 2/5"""

TRANSCRIPT_CHURN = """Agent: Good afternoon, Fibrelink support, you're speaking with Marco.
Customer: Hi Marco. My internet has dropped out every evening for two weeks. I work from home and I've missed two client calls.
Agent: I'm really sorry, that sounds stressful. Can you confirm the postcode on the account?
Customer: LS6 3AB.
Agent: Thanks. I can see an open fault in your area, but no fix date yet.
Customer: No fix date? A competitor is offering me double the speed for less money. I'm seriously thinking about leaving.
Agent: I understand. I can book an engineer visit for Thursday and apply a credit for the days affected.
Customer: A credit doesn't get my client calls back. If it's not fixed by Thursday I'm cancelling.
Agent: That's fair. I've booked the engineer for Thursday morning and added a note to your account."""

CHAIN_CHURN = """<thinking>
Step 1 - Customer Sentiment Analysis
The customer is anxious and angry because evening dropouts over two weeks have cost her two client calls while working from home. Her tone hardens when she learns there is no fix date, and she names a competitor offer with double the speed for less money.
Step 2 - Agent Performance Evaluation
Marco showed genuine empathy, verified the postcode and took ownership by booking an engineer and offering a credit. He did not explain why the area fault has no fix date or offer a temporary workaround such as a mobile data booster, so the customer still felt exposed for her next working day.
Step 3 - Interaction Quality Assessment
The call was short and courteous, but it ended without a resolution: the fault remains open and the Thursday visit is a conditional promise. The customer's explicit ultimatum shows the interaction did not rebuild trust.
Step 4 - Root Cause Analysis
The root cause is a technical issue: an unresolved area network fault causing nightly dropouts. The lack of a published fix date turned a technical problem into a loyalty problem, since the customer cannot plan her work around it.
Step 5 - Business Impact Analysis
This is a high-value work-from-home customer with a concrete competitor offer, so the risk of losing her recurring revenue is high. A cancellation after Thursday would also raise acquisition cost to replace her, and unresolved area faults tend to drive repeat calls from every affected household.
</thinking>
<analysis>
Quality Metrics: No hold, no transfer, empathy shown early; unresolved at call end with a conditional engineer visit.
Key Strengths: Empathy, fast verification, ownership of the engineer booking and the credit.
Critical Issues: No fix date, no interim workaround, and no retention offer against a named competitor.
Patterns & Trends: Area faults without fix dates generate churn threats across the affected postcode.
</analysis>
<insights>
Immediate Coaching: Coach Marco to offer an interim workaround, such as a 4G backup router, whenever a customer works from home during an open fault.
Process Improvements: Publish estimated fix dates for area faults to the agent desktop so agents can set expectations on the first call.
Business Actions: Flag this account to the retention team before Thursday and prepare a loyalty discount matching the competitor speed offer.
Strategic Insights: Prioritise network repairs in postcodes with many work-from-home customers, because their churn risk and revenue at stake are higher.
</insights>
Final answer:
The customer has an unresolved fault, a named competitor offer and an explicit cancellation deadline, so churn risk is high.
Churn risk: high"""

TRANSCRIPT_QA = """Agent: Thank you for calling Brightside Energy, my name is Leah. Who am I speaking with?
Customer: This is Tom Ellis. I want to switch my tariff to the fixed one you advertised.
Agent: Happy to help, Tom. For security, can you confirm your date of birth and the first line of your address?
Customer: 12 March 1984, 9 Orchard Lane.
Agent: Thank you, you're verified. The Fix 24 tariff is 24.1p per kWh fixed for two years, with a standing charge of 48p a day. There's no exit fee on your current plan.
Customer: Will my direct debit change?
Agent: Yes, it would go from £92 to about £87 a month based on your usage. Would you like me to switch you?
Customer: Yes please.
Agent: Done. You'll get a confirmation email within the hour, and the new rate starts on the 1st. Is there anything else I can help with?
Customer: No, that's great, thanks Leah."""

CHAIN_QA = """<thinking>
Step 1 - Customer Sentiment Analysis
Tom starts neutral and purposeful, asking to move to the advertised fixed tariff. His sentiment becomes positive as Leah answers the direct debit question clearly, and he closes warmly, thanking her by name.
Step 2 - Agent Performance Evaluation
Leah greeted the customer with her name, completed identity verification before discussing the account, and explained the Fix 24 rate, standing charge and exit fees accurately. She anticipated the cost question by quoting the new monthly payment, which shows strong product knowledge. Her closing confirmed next steps and offered further help.
Step 3 - Interaction Quality Assessment
The call was efficient: no hold, no transfer, and the plan change was completed in one contact. Every rubric item was met; the only gap is that she did not check whether the customer understood the two-year fixed term before switching.
Step 4 - Root Cause Analysis
This was a plan change request triggered by advertising of the fixed tariff. It was resolved at first contact because the agent had the tariff details and the authority to switch the plan herself.
Step 5 - Business Impact Analysis
A clean first-contact resolution keeps handle time and cost to serve low, and a two-year fixed plan improves retention because the customer is locked into a stable rate. The positive close makes a good CSAT response likely, supporting the campaign's conversion revenue.
</thinking>
<analysis>
Quality Metrics: Greeting, verification, product accuracy and closing all met; no hold or transfer; resolved in one contact.
Key Strengths: Proactive cost explanation, accurate tariff details and a clear confirmation of when the rate starts.
Critical Issues: Minor: no explicit check that the customer understood the two-year commitment.
Patterns & Trends: Advertised tariff switches resolve quickly when agents have rate tables ready on screen.
</analysis>
<insights>
Immediate Coaching: Recognise Leah's call as a model example and add a one-line check of contract length before confirming tariff switches.
Process Improvements: Add a contract-term confirmation prompt to the tariff switch screen so every agent reads out the fixed period.
Business Actions: Use this call in onboarding for the Fix 24 campaign and track switch conversion per agent to measure campaign revenue.
Strategic Insights: Fixed-tariff switches are low-effort, high-retention contacts, so routing campaign callers to trained agents should raise conversion.
</insights>
Final answer:
Leah met every item of the QA rubric with accurate product information and a clean close; only the contract-term check was missing.
QA score: 94/100"""

FIXTURES = [
    ("csat", {"csat": 2}, TRANSCRIPT_CSAT, CHAIN_CSAT),
    ("churn", {"churn": "high"}, TRANSCRIPT_CHURN, CHAIN_CHURN),
    ("quality", {"quality": 92}, TRANSCRIPT_QA, CHAIN_QA),
]


def _score(fixture, text=None, with_transcript=True):
    task, labels, transcript, chain = fixture
    return q.score_chain(chain if text is None else text, task, labels, transcript if with_transcript else None)


def _filler_chain(filler: str, answer: str = "CSAT: 2/5") -> str:
    return render_chain({n: filler for n in range(1, 6)}, {p: filler for p in ANALYSIS_PARTS},
                        {p: filler for p in INSIGHT_PARTS}, answer)


LOREM = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
         "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.")


# ----------------------------------------------------------------------------------------------
# parse_chain and render_chain


def test_fixture_lengths_are_realistic():
    for _, _, _, chain in FIXTURES:
        assert 1500 <= len(chain) <= 3000


def test_parse_canonical_fixture():
    p = parse_chain(CHAIN_CSAT)
    assert all(p["present"].values()) and all(p["closed"].values()) and p["in_order"]
    assert [s["n"] for s in p["steps"]] == [1, 2, 3, 4, 5]
    assert all(s["title_ok"] for s in p["steps"])
    assert list(p["parts"]["analysis"]) == list(ANALYSIS_PARTS)
    assert list(p["parts"]["insights"]) == list(INSIGHT_PARTS)
    assert p["final_answer"].endswith("CSAT: 2/5")
    assert p["problems"] == []


def test_parse_header_variants():
    text = ("<thinking>\n**Step 1 - Customer Sentiment Analysis**\nangry\n"
            "Step 2: Agent Performance Evaluation: polite but slow\n"
            "### Step 3 \u2013 Interaction Quality Assessment\nok\n"
            "Step 4 \u2014 Root Cause Analysis\nbilling\n"
            "- Step 5. Business Impact Analysis\ncost\n</thinking>\n"
            "<analysis>\n**Quality Metrics:** QA 70\n- Key Strengths: calm\n1. Critical Issues - none\n"
            "**Patterns and Trends**: repeat calls\n</analysis>")
    p = parse_chain(text)
    assert [(s["n"], s["title_ok"]) for s in p["steps"]] == [(n, True) for n in range(1, 6)]
    assert p["steps"][0]["body"] == "angry"
    assert p["steps"][1]["body"] == "polite but slow"
    assert p["parts"]["analysis"] == {
        "Quality Metrics": "QA 70", "Key Strengths": "calm", "Critical Issues": "none",
        "Patterns & Trends": "repeat calls"}


def test_parse_junk_around_and_missing_closers():
    text = "Sure! Here is the chain:\n<THINKING>\nStep 1 - Customer Sentiment Analysis\nfine\n<analysis>\nKey Strengths: x\n<insights>\nBusiness Actions: y\nFinal answer:\nCSAT: 3/5\nHope this helps!"
    p = parse_chain(text)
    assert p["present"] == {"thinking": True, "analysis": True, "insights": True}
    assert p["closed"] == {"thinking": False, "analysis": False, "insights": False}
    assert p["in_order"]
    assert p["sections"]["thinking"].endswith("fine")
    assert p["sections"]["insights"] == "Business Actions: y"
    assert p["final_answer"] == "CSAT: 3/5\nHope this helps!"
    assert "<thinking> is not closed" in p["problems"]


def test_parse_fake_closer_in_later_sections_and_final_answer():
    # thinking lacks its closer; fake </thinking> tags appear in insights and the final answer.
    text = CHAIN_CSAT.replace("</thinking>\n", "", 1)
    text = text.replace("Strategic Insights: Track", "Strategic Insights: </thinking> Track")
    text = text + "\n</thinking> </analysis>"
    p = parse_chain(text)
    assert not p["closed"]["thinking"]
    assert "<analysis>" not in p["sections"]["thinking"]
    assert p["sections"]["thinking"].rstrip().endswith("within 7 days.")
    assert p["closed"]["analysis"] and p["closed"]["insights"]
    assert "Step 5 - Business Impact Analysis" in p["sections"]["thinking"]
    assert len(p["steps"]) == 5


def test_parse_duplicate_tags_and_out_of_order():
    dup = CHAIN_CSAT.replace("<analysis>", "<analysis>\n<analysis>", 1)
    p = parse_chain(dup)
    assert not p["in_order"] and "<analysis> is opened 2 times" in p["problems"]
    assert p["present"]["analysis"] and p["closed"]["analysis"]
    swapped = "<insights>\nBusiness Actions: a\n</insights>\n<thinking>\nt\n</thinking>\n<analysis>\nb\n</analysis>"
    p = parse_chain(swapped)
    assert all(p["present"].values()) and not p["in_order"]
    assert "<insights> is out of order" in p["problems"]
    assert p["sections"]["insights"] == "Business Actions: a"


def test_parse_garbage_never_raises():
    for text in ("", "no tags at all", "</thinking><thinking>", None, "<analysis>" * 50, 12345):
        p = parse_chain(text)
        assert isinstance(p["problems"], list)
    p = parse_chain("The customer is happy.\nCSAT: 5/5")
    assert not any(p["present"].values())
    assert p["final_answer"] == "" and not p["has_final_header"]


def test_render_round_trip():
    steps = {n: f"body {n}" for n in range(1, 6)}
    text = render_chain(steps, {p: p.lower() for p in ANALYSIS_PARTS}, {p: p.upper() for p in INSIGHT_PARTS}, "Churn risk: low")
    assert text.startswith("<thinking>\nStep 1 - Customer Sentiment Analysis\nbody 1\n")
    assert f"</insights>\n{FINAL_ANSWER_HEADER}\nChurn risk: low" in text
    p = parse_chain(text)
    assert [s["body"] for s in p["steps"]] == [f"body {n}" for n in range(1, 6)]
    assert p["parts"]["insights"]["Business Actions"] == "BUSINESS ACTIONS"
    assert p["final_answer"] == "Churn risk: low" and p["problems"] == []
    assert render_chain({"Root Cause Analysis": "x"}, {}, {}, "") == render_chain({4: "x"}, {}, {}, "")
    with pytest.raises(ValueError):
        render_chain({6: "x"}, {}, {}, "")
    with pytest.raises(ValueError):
        render_chain({}, {"Quality metrics": "x"}, {}, "")
    assert SECTIONS == ("thinking", "analysis", "insights") and len(STEPS) == 5


# ----------------------------------------------------------------------------------------------
# Whole-chain scores


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f[0] for f in FIXTURES])
def test_genuine_chains_score_high(fixture):
    r = _score(fixture)
    assert r["score"] >= 80, r
    assert r["sections_ok"]
    assert r["score"] >= q.GATE_THRESHOLD
    assert abs(sum(c["points"] for c in r["criteria"].values()) - r["score"]) < 1e-6
    assert set(r["criteria"]) == set(q.WEIGHTS)
    for name, c in r["criteria"].items():
        assert 0 <= c["points"] <= c["max"] == q.WEIGHTS[name]
        assert c["reason"] and c["reason"].endswith(".")
    # Without a transcript or labels the chain still passes.
    assert _score(fixture, with_transcript=False)["score"] >= 80
    assert q.score_chain(fixture[3])["score"] >= 80


def test_weights_and_thresholds():
    assert sum(q.WEIGHTS.values()) == 100
    assert q.THRESHOLD == 70 and q.GATE_THRESHOLD == 75


PLAIN_CHAIN = """<thinking>
Step 1 - Customer Sentiment Analysis
The customer was frustrated because she had to call three times about a duplicate charge. Her tone became more negative when she was told about the transfer.
Step 2 - Agent Performance Evaluation
The agent was polite and apologized, but she put the customer on hold without explanation and transferred the call instead of resolving it herself.
Step 3 - Interaction Quality Assessment
The issue was eventually resolved with a refund, but the process was slow due to the hold and the transfer.
Step 4 - Root Cause Analysis
The root cause is a billing error that was not fixed on previous calls, which led to repeat contacts.
Step 5 - Business Impact Analysis
Repeat calls increase operational costs and the poor experience raises the risk of churn for this customer.
</thinking>
<analysis>
Quality Metrics: One hold, one transfer, resolved on the third contact.
Key Strengths: The agent was polite and the refund was processed.
Critical Issues: The hold was not explained and the transfer was unnecessary.
Patterns & Trends: Billing errors cause repeat calls.
</analysis>
<insights>
Immediate Coaching: Coach the agent to explain holds and to take ownership of billing issues.
Process Improvements: Allow frontline agents to process simple refunds without a transfer.
Business Actions: Review billing accuracy to reduce repeat calls and costs.
Strategic Insights: Investing in first contact resolution will improve customer satisfaction.
</insights>
Final answer:
The customer needed three contacts to fix a duplicate charge.
CSAT: 2/5"""

GENERIC_CHAIN = render_chain(
    {1: "The customer was frustrated during the call.", 2: "The agent was polite and professional.",
     3: "The interaction was average.", 4: "The root cause was a billing issue.",
     5: "This could affect customer satisfaction and retention."},
    {"Quality Metrics": "Average.", "Key Strengths": "Politeness.", "Critical Issues": "Long hold.",
     "Patterns & Trends": "Billing issues are common."},
    {"Immediate Coaching": "The agent should improve empathy.", "Process Improvements": "Improve processes.",
     "Business Actions": "Focus on customer satisfaction.", "Strategic Insights": "Invest in training."},
    "CSAT: 2/5",
)


def test_plain_genuine_chain_passes_and_generic_one_does_not():
    # A shorter, plainer chain of the kind a 7B teacher writes still passes the gate...
    r = q.score_chain(PLAIN_CHAIN, "csat", {"csat": 2}, TRANSCRIPT_CSAT)
    assert q.GATE_THRESHOLD <= r["score"] < _score(FIXTURES[0])["score"] and q.passes(r)
    assert "short bodies" in r["criteria"]["steps"]["reason"]
    # ...while one-liners of generic advice do not.
    r = q.score_chain(GENERIC_CHAIN, "csat", {"csat": 2}, TRANSCRIPT_CSAT)
    assert r["score"] < q.THRESHOLD and not q.passes(r)
    assert r["criteria"]["actionable"]["points"] == 0 and r["criteria"]["reasoning"]["points"] == 0


@pytest.mark.parametrize("filler", ["N/A", LOREM, "TBD.", "See above.", "Customer sentiment analysis."])
def test_headers_with_filler_score_low(filler):
    r = q.score_chain(_filler_chain(filler), "csat", {"csat": 2}, TRANSCRIPT_CSAT)
    assert r["score"] < 50, r
    assert r["criteria"]["steps"]["points"] <= 5
    assert r["criteria"]["length"]["points"] == 0


def test_transcript_pasted_into_sections_scores_low():
    lines = TRANSCRIPT_CSAT.splitlines()
    chunks = {n: "\n".join(lines[2 * (n - 1): 2 * n]) for n in range(1, 6)}
    text = render_chain(chunks, {p: TRANSCRIPT_CSAT for p in ANALYSIS_PARTS}, {p: TRANSCRIPT_CSAT for p in INSIGHT_PARTS}, "CSAT: 2/5")
    r = q.score_chain(text, "csat", {"csat": 2}, TRANSCRIPT_CSAT)
    assert r["score"] < 50, r
    assert r["criteria"]["reasoning"]["points"] == 0
    assert "copied from the transcript" in r["criteria"]["length"]["reason"]
    # Without the transcript the paste cannot be detected as a copy, but still is no chain.
    assert q.score_chain(text, "csat", {"csat": 2})["score"] < 70


def test_transcript_appended_to_a_good_chain_adds_nothing():
    good = _score(FIXTURES[0])
    padded = CHAIN_CSAT.replace("</thinking>", TRANSCRIPT_CSAT + "\n</thinking>")
    assert _score(FIXTURES[0], padded)["score"] <= good["score"]


def test_reference_answer_alone_scores_low():
    ref = ("The customer needed three contacts and a transfer to get a duplicate charge refunded, "
           "so satisfaction is low because the fix came late.\nCSAT: 2/5")
    r = q.score_chain(ref, "csat", {"csat": 2}, TRANSCRIPT_CSAT)
    assert r["score"] <= 20 and not r["sections_ok"]
    r = q.score_chain(f"{FINAL_ANSWER_HEADER}\n{ref}", "csat", {"csat": 2}, TRANSCRIPT_CSAT)
    assert r["score"] <= 20


def test_keyword_stuffing_earns_nothing_extra():
    good = _score(FIXTURES[0])
    stuffed = CHAIN_CSAT.replace(
        "within 7 days.",
        "within 7 days. " + "Churn cost revenue CSAT NPS AHT because therefore retention. " * 5
        + " ".join(["because"] * 40) + ". " + "churn " * 30 + ".",
    )
    r = _score(FIXTURES[0], stuffed)
    assert r["score"] <= good["score"]
    for name in ("reasoning", "business_impact", "length", "steps"):
        assert r["criteria"][name]["points"] <= good["criteria"][name]["points"]


def test_copied_sentences_count_once():
    one = "The customer was upset because the duplicate charge was not refunded after two calls."
    text = render_chain({1: " ".join([one] * 10)}, {}, {}, "CSAT: 2/5")
    a = analysis.analyse(text)
    assert criteria.criterion_reasoning(a)["reason"].startswith("1 distinct causal statement ")
    assert criteria.criterion_length(a)["points"] == round(5 * len(one) / 500, 2)


def test_damaged_chains_lose_points_in_proportion():
    good = _score(FIXTURES[1])["score"]
    no_insights = CHAIN_CHURN[: CHAIN_CHURN.index("<insights>")] + CHAIN_CHURN[CHAIN_CHURN.index("Final answer:"):]
    r = _score(FIXTURES[1], no_insights)
    assert good - r["score"] >= 25 and not r["sections_ok"] and not q.passes(r)
    assert q.passes(_score(FIXTURES[1]))
    assert r["criteria"]["actionable"]["points"] == 0
    wrong = _score(FIXTURES[1], CHAIN_CHURN.replace("Churn risk: high", "Churn risk: low"))
    assert wrong["criteria"]["label_agreement"]["points"] == 0
    assert good - wrong["score"] == pytest.approx(15)


# ----------------------------------------------------------------------------------------------
# Each criterion on hand-made inputs


def test_sections_criterion():
    full = criteria.criterion_sections(analysis.analyse(CHAIN_CSAT))
    assert full["points"] == 20
    r = criteria.criterion_sections(analysis.analyse("<thinking>a</thinking><analysis>b"))
    assert r["points"] == pytest.approx((3 + 1.5 + 3 + 2 * 2 / 3) / 2, abs=0.01)
    assert "missing <insights>" in r["reason"].lower() and "<analysis> not closed" in r["reason"]
    assert criteria.criterion_sections(analysis.analyse("no structure"))["points"] == 0
    ooo = criteria.criterion_sections(analysis.analyse("<analysis>a</analysis><thinking>b</thinking><insights>c</insights>"))
    assert "out of order" in ooo["reason"] and ooo["points"] == pytest.approx(13.5)


def test_length_criterion():
    assert criteria.criterion_length(analysis.analyse(CHAIN_CSAT))["points"] == 5
    short = render_chain({1: "The customer was annoyed by the second transfer and the long hold."}, {}, {}, "")
    r = criteria.criterion_length(analysis.analyse(short))
    assert 0 < r["points"] < 1.5 and "500 needed" in r["reason"]
    # Text outside the sections does not count.
    assert criteria.criterion_length(analysis.analyse("Final answer:\n" + "The refund was late for this customer. " * 30))["points"] == 0


def test_steps_criterion():
    r = criteria.criterion_steps(analysis.analyse(CHAIN_CSAT))
    assert r["points"] == 20 and r["reason"] == "5 of 5 steps found in order, all with substantive bodies."
    cut = CHAIN_CSAT[: CHAIN_CSAT.index("Step 4 -")] + CHAIN_CSAT[CHAIN_CSAT.index("Step 5 -"):]
    r = criteria.criterion_steps(analysis.analyse(cut))
    assert r["points"] == pytest.approx(16)
    assert "4 of 5 steps found in order; missing Step 4 - Root Cause Analysis" in r["reason"]
    p = parse_chain(CHAIN_CSAT)
    bodies = {s["n"]: s["body"] for s in p["steps"]}
    swapped = render_chain(bodies, {}, {}, "").replace("Step 2 - Agent", "Step 9 - Agent").replace(
        "Step 3 - Interaction", "Step 2 - Agent Performance Evaluation\n").replace("Step 9 - Agent", "Step 3 - Interaction")
    assert criteria.criterion_steps(analysis.analyse(swapped))["points"] < 16
    wrong_titles = CHAIN_CSAT.replace("Customer Sentiment Analysis", "Mood").replace("Root Cause Analysis", "Why")
    assert criteria.criterion_steps(analysis.analyse(wrong_titles))["points"] == pytest.approx(19.2)


def test_reasoning_criterion():
    assert criteria.criterion_reasoning(analysis.analyse(CHAIN_CSAT, TRANSCRIPT_CSAT))["points"] == 15
    flat = "\n".join(f"The customer mentioned item {i} on the invoice and the agent noted it." for i in range(8))
    assert criteria.criterion_reasoning(analysis.analyse(render_chain({1: flat}, {}, {}, "")))["points"] == 0
    # Causal sentences without content words earn nothing.
    vague = "It happened because of that. So it was, since then. Therefore yes."
    assert criteria.criterion_reasoning(analysis.analyse(render_chain({1: vague}, {}, {}, "")))["points"] == 0
    # Ungrounded reasoning (nothing from transcript or labels) earns half.
    off = ("The weather worsened because clouds formed over mountains. Traffic slowed since roads flooded near bridges. "
           "Markets dipped due to uncertain quarterly forecasts overall. Birds migrated early because autumn arrived "
           "sooner. Rivers rose therefore farmers moved livestock uphill.")
    spread = render_chain({n: s for n, s in enumerate(off.split(". "), 1)}, {}, {}, "")
    assert criteria.criterion_reasoning(analysis.analyse(spread))["points"] == 15
    assert criteria.criterion_reasoning(analysis.analyse(spread, TRANSCRIPT_CSAT))["points"] == 7.5
    # At most three causal sentences count from one step.
    crowded = render_chain({1: off}, {}, {}, "")
    assert criteria.criterion_reasoning(analysis.analyse(crowded))["points"] == 9


def test_actionable_criterion():
    r = criteria.criterion_actionable(analysis.analyse(CHAIN_CHURN))
    assert r["points"] >= 12 and "in 4 of 4 insight parts" in r["reason"]
    generic = render_chain({}, {}, {p: "Improve overall performance and quality going forward." for p in INSIGHT_PARTS}, "")
    assert criteria.criterion_actionable(analysis.analyse(generic))["points"] == 0
    filler = render_chain({}, {}, {p: "N/A" for p in INSIGHT_PARTS}, "")
    assert criteria.criterion_actionable(analysis.analyse(filler))["points"] == 0
    # Actions outside <insights> do not count.
    elsewhere = render_chain({1: "Coach Priya to acknowledge repeat contacts before placing callers on hold."}, {}, {}, "")
    assert criteria.criterion_actionable(analysis.analyse(elsewhere))["points"] == 0
    # Without part headers, actions in <insights> earn partial credit.
    loose = "<insights>\n" + "\n".join(parse_chain(CHAIN_CHURN)["parts"]["insights"].values()) + "\n</insights>"
    r = criteria.criterion_actionable(analysis.analyse(loose))
    assert 5 < r["points"] < 12 and "without part headers" in r["reason"]


def test_business_impact_criterion():
    assert criteria.criterion_business_impact(analysis.analyse(CHAIN_CSAT))["points"] == 10
    none = render_chain({5: "The call went fine and nothing else needs to be said about the matter here."}, {}, {}, "")
    assert criteria.criterion_business_impact(analysis.analyse(none))["points"] == 0
    # Impact terms only outside Step 5 / Business Actions are capped.
    elsewhere = render_chain({1: "Her churn risk is high and the repeat calls increase handle time, cost and complaint volume for the team."}, {}, {}, "")
    r = criteria.criterion_business_impact(analysis.analyse(elsewhere))
    assert 0 < r["points"] <= 7 and "Step 5" in r["reason"]
    # Repeating a term adds nothing.
    once = render_chain({5: "Repeat calls raise the cost to serve this account by $40 each month for the team."}, {}, {}, "")
    many = render_chain({5: "Repeat calls raise the cost, cost, cost, cost to serve this account by $40 each month for the team."}, {}, {}, "")
    assert criteria.criterion_business_impact(analysis.analyse(many))["points"] <= criteria.criterion_business_impact(analysis.analyse(once))["points"]


def test_label_agreement_criterion():
    a = analysis.analyse(CHAIN_CSAT)
    assert criteria.criterion_label_agreement(a, "csat", {"csat": 2})["points"] == 15
    r = criteria.criterion_label_agreement(a, "csat", {"csat": 4})
    assert r["points"] == 0 and r["reason"] == "Final answer says CSAT: 2/5; the reference is CSAT: 4/5."
    r = criteria.criterion_label_agreement(a, "csat", None)
    assert r["points"] == 15 and r["reason"].startswith("No reference labels")
    # Labels for all tasks, task unknown: the answer's own task is checked.
    assert criteria.criterion_label_agreement(a, None, {"csat": 2, "churn": "low"})["points"] == 15
    # No answer line at all.
    r = criteria.criterion_label_agreement(analysis.analyse(CHAIN_CSAT.replace("CSAT: 2/5", "")), "csat", {"csat": 2})
    assert r["points"] == 0 and r["reason"] == "No CSAT prediction answer line found in the final answer."
    # Answer line only outside the final answer: partial credit.
    moved = CHAIN_CSAT.replace("\nCSAT: 2/5", "").replace("</thinking>", "CSAT: 2/5\n</thinking>")
    r = criteria.criterion_label_agreement(analysis.analyse(moved), "csat", {"csat": 2})
    assert r["points"] == 10 and "outside the final answer" in r["reason"]
    # QA scores agree within 10 points; sentiment needs both keys.
    qa = analysis.analyse(CHAIN_QA)
    assert criteria.criterion_label_agreement(qa, "quality", {"quality": 85})["points"] == 15
    assert criteria.criterion_label_agreement(qa, "quality", {"quality": 70})["points"] == 0
    sent = analysis.analyse("Final answer:\nCustomer sentiment: negative; trajectory: improving")
    assert criteria.criterion_label_agreement(sent, "sentiment", {"sentiment": "negative", "sentiment_trajectory": "improving"})["points"] == 15
    assert criteria.criterion_label_agreement(sent, "sentiment", {"sentiment": "negative", "sentiment_trajectory": "stable"})["points"] == 0


def test_score_chain_tolerates_bad_input():
    for text in ("", None, 42, "<thinking>" * 1000):
        r = q.score_chain(text, "csat", {"csat": 3}, "")
        assert 0 <= r["score"] <= 100
    assert q.score_chain(CHAIN_CSAT, "not_a_task", {"csat": 2})["criteria"]["label_agreement"]["points"] == 0


# ----------------------------------------------------------------------------------------------
# Files and summaries


def _line(task, labels, transcript, chain, ex_id):
    return json.dumps({
        "messages": [
            {"role": "system", "content": "You are a contact-center quality analyst."},
            {"role": "user", "content": user_content(transcript, task)},
            {"role": "assistant", "content": chain},
        ],
        "meta": {"id": ex_id, "task": task, "labels": labels},
    })


def test_score_file_and_summarize(tmp_path):
    path = tmp_path / "chains.jsonl"
    lines = [_line(*f, ex_id=f"ex-{i}") for i, f in enumerate(FIXTURES)]
    lines.insert(1, "{not json")
    lines.append("")
    lines.append(json.dumps({"messages": [{"role": "user", "content": "hi"}]}))
    lines.append(json.dumps({"messages": [{"role": "assistant", "content": "Final answer:\nCSAT: 3/5"}]}))
    lines.append(json.dumps(["a", "list"]))
    lines.append(_line("csat", {"csat": 5}, TRANSCRIPT_CSAT, _filler_chain("N/A"), "ex-bad"))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    results = list(q.score_file(path))
    by_line = {r["line"]: r for r in results}
    assert sorted(by_line) == [1, 2, 3, 4, 6, 7, 8, 9]
    assert "invalid JSON" in by_line[2]["error"]
    assert by_line[6]["error"] == "no assistant message"
    assert by_line[8]["error"] == "line is not a JSON object"
    assert [by_line[n]["id"] for n in (1, 3, 4)] == ["ex-0", "ex-1", "ex-2"]
    for n, f in zip((1, 3, 4), FIXTURES):
        assert by_line[n]["score"] == _score(f)["score"]
        assert set(by_line[n]["criteria"]) == set(q.WEIGHTS)
    assert by_line[7]["id"] is None and by_line[7]["score"] <= 20
    assert by_line[9]["score"] < 40

    s = q.summarize(results)
    scores = [r["score"] for r in results if "score" in r]
    assert s["count"] == 5 and s["errors"] == 3
    assert s["average"] == pytest.approx(sum(scores) / 5, abs=0.01)
    assert s["share_ge_70"] == pytest.approx(3 / 5)
    assert s["share_all_sections"] == pytest.approx(4 / 5)
    assert s["criteria"]["label_agreement"] == pytest.approx((15 * 3 + 15 + 0) / 5)
    assert set(s["criteria"]) == set(q.WEIGHTS)
    empty = q.summarize([])
    assert empty["count"] == 0 and empty["average"] == 0 and empty["share_ge_70"] == 0


def test_score_file_is_lazy(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(_line(*FIXTURES[0], ex_id=str(i)) for i in range(50)), encoding="utf-8")
    it = q.score_file(path)
    assert next(it)["line"] == 1
