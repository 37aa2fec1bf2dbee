"""AppTest of the foundation pages, and the rule that the UI never imports torch/transformers."""

import re
import subprocess
import sys
import textwrap

from engine import api

from engine.core import store
from engine.core.paths import REPO

APP = str(REPO / "app.py")


def page_files():
    return re.findall(r'st\.Page\("([^"]+)"', (REPO / "app.py").read_text())


def test_every_page_renders_without_exception(app_env, open_page):
    pages = page_files()
    assert {"pages/pipeline.py", "pages/data.py", "pages/jobs.py"} <= set(pages)
    for page in pages:
        at = open_page(page, check=False)
        assert not at.exception, (page, [e.value for e in at.exception])
        assert at.title, page


def test_pipeline_shows_phases_and_counts(app_env, open_page):
    at = open_page("pages/pipeline.py", check=False)
    texts = [t.value for t in at.text]
    assert any("420 examples (300 train) in demo-seed0" in t for t in texts)
    assert "data" in at.info[0].value.lower() or "generate" in at.info[0].value.lower()


def test_data_page_creates_a_synth_job_once(app_env, open_page):
    at = open_page("pages/data.py", check=False)
    at.button(key="synth-start").click().run()
    at.button(key="synth-start").click().run()
    db = store.connect(app_env)
    # Two presses while the first is queued make one job.
    assert db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'synth'").fetchone()[0] == 1
    assert not at.exception


def test_data_page_shows_transcript_as_plain_text(app_env, open_page):
    xss = "Customer: <script>alert('x')</script> </thinking>"
    db = store.connect(app_env)
    ds = store.create_dataset(db, "xss", "import")
    store.insert_examples(db, ds, [{"split": "train", "ex_id": "x", "task": "csat",
                                    "messages": [{"role": "user", "content": xss}], "meta": {"id": "x"},
                                    "labels": {}, "transcript": xss}])
    api.set_current_dataset("xss")
    at = open_page("pages/data.py", check=False)
    assert not at.exception
    assert xss in [t.value for t in at.text]  # st.text: shown literally, never rendered
    assert all(xss not in m.value for m in at.markdown)


def test_jobs_page_lists_jobs(app_env, open_page):
    from engine.core import jobs

    job = jobs.run_inline(app_env, "synth", {"preset": "demo", "seed": 5}, echo=False)
    at = open_page("pages/jobs.py", check=False)
    assert not at.exception
    assert at.selectbox(key="jobs-pick").value == job["id"]


def test_pages_never_import_heavy_ml_libraries(app_env, tmp_path):
    """Render every page in a fresh interpreter, then check what got imported."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent(f"""
        import re, sys
        from streamlit.testing.v1 import AppTest
        pages = re.findall(r'st\\.Page\\("([^"]+)"', open({APP!r}).read())
        for page in pages:
            at = AppTest.from_file({APP!r}, default_timeout=60)
            at.run()
            at.switch_page(page)
            at.run()
            assert not at.exception, (page, [e.value for e in at.exception])
        heavy = sorted(m for m in ("torch", "transformers", "peft", "accelerate", "trl") if m in sys.modules)
        print("HEAVY", heavy)
    """))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert "HEAVY []" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_ui_sources_do_not_import_heavy_libraries():
    sources = [REPO / "app.py", REPO / "ui.py", *sorted((REPO / "engine" / "api").glob("*.py"))] + sorted((REPO / "pages").glob("*.py"))
    pattern = re.compile(r"^\s*(import|from)\s+(torch|transformers|peft|accelerate|trl)\b", re.M)
    offenders = [str(p.relative_to(REPO)) for p in sources if pattern.search(p.read_text())]
    assert offenders == []
