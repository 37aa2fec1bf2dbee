"""Showing a reasoning chain readably (Generate, Quality and Review pages). UI only.

The chain is model output, so every piece of its text goes through ``st.text`` (never markdown):
only the fixed section, step and part names, which are ours, are written as headings.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from engine import api

SECTION_TITLES = {"thinking": "Thinking", "analysis": "Analysis", "insights": "Insights"}


def show_chain(text: str) -> None:
    """Sections, steps and parts laid out with headings; the raw text in an expander."""
    parsed = api.chain_parts(text or "")
    if not any(parsed["present"].values()):
        st.caption("No sections found; the raw text:")
        st.text(text or "")
        return
    for name, title in SECTION_TITLES.items():
        body = parsed["sections"].get(name)
        if body is None:
            st.caption(f"{title}: missing")
            continue
        st.markdown(f"**{title}**")
        if name == "thinking" and parsed["steps"]:
            for step in parsed["steps"]:
                if step["title_ok"]:
                    st.caption(f"Step {int(step['n'])} - {step['title']}")
                else:
                    st.text(f"Step {int(step['n'])} - {step['title']}")
                st.text(step["body"] or "(empty)")
        elif parsed["parts"].get(name):
            for part, part_body in parsed["parts"][name].items():
                st.caption(part)  # a name from our fixed list
                st.text(part_body or "(empty)")
        else:
            st.text(body)
    st.markdown("**Final answer**")
    st.text(parsed["final_answer"] or "(none)")
    if parsed["problems"]:
        st.caption("Structure problems:")
        st.text("\n".join(parsed["problems"]))
    with st.expander("Raw chain text"):
        st.code(text or "", language=None)


def show_criteria(criteria: dict) -> None:
    """Points and the reviewer-facing reason of every criterion."""
    if not criteria:
        return
    st.dataframe(pd.DataFrame([{"criterion": k, "points": c.get("points"), "max": c.get("max"),
                                "reason": c.get("reason", "")} for k, c in criteria.items()]),
                 hide_index=True, width="stretch")
