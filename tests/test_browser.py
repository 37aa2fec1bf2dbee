"""The app in a real browser: headless Chromium (Debian's package, installed by `make test`)
driven by Playwright against `streamlit run app.py` on loopback, with its own CCR_HOME.

- ``test_xss_payloads_stay_inert_on_every_page``: 30 XSS payloads as imported transcripts, as
  model output (reasoning chains, evaluation answers) and as a dataset name are shown on every page; no
  dialog opens, no request leaves loopback, no payload element or script runs, and every page
  opens without an exception box. Fast: no model.
- ``test_walk_through_the_whole_pipeline``: what a user does on the embedded SmolLM2-135M with tiny
  sizes: create the demo dataset, test the teacher on one example, generate chains for two, read
  them on Quality, give a reviewer name and approve a flagged one in Review and export, train two
  steps and see the loss curve, evaluate the run against its base (every confusion matrix read
  back from the page), compare the two models side by side, start the API server and call it. A screenshot of each page lands in ``$CCR_ARTIFACTS/browser`` (the folder
  `make test` prints).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CCR_CHROMIUM", "/usr/bin/chromium")
sys.path.insert(0, str(Path(__file__).parent))
from helpers import free_port, start_app, wait_for  # noqa: E402

# Each payload would, if the page rendered it as HTML or markdown, set window.__xss, open a dialog,
# add an element marked data-xss, or fetch from xss.invalid. Shown as text, none of that happens.
PAYLOADS = [
    "<script>window.__xss=1;alert(1)</script>",
    '<img src=x onerror="window.__xss=2;alert(2)" data-xss>',
    '<svg onload="window.__xss=3" data-xss></svg>',
    '<iframe src="javascript:parent.__xss=4" data-xss></iframe>',
    "<body onload=alert(5)>",
    '<a href="javascript:alert(6)" data-xss>click me</a>',
    '"><script>alert(7)</script>',
    "'><img src=http://xss.invalid/8.png data-xss>",
    '<details open ontoggle="window.__xss=9" data-xss>x</details>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(10)>",
    "<style>@import 'http://xss.invalid/11.css';</style>",
    "<link rel=stylesheet href=http://xss.invalid/12.css data-xss>",
    '<object data="http://xss.invalid/13" data-xss></object>',
    '<embed src="http://xss.invalid/14" data-xss>',
    '<video><source onerror="window.__xss=15" data-xss></video>',
    '<input autofocus onfocus="window.__xss=16" data-xss>',
    "[click here](javascript:alert(17))",
    "![tracker](http://xss.invalid/18.png)",
    '<meta http-equiv="refresh" content="0;url=http://xss.invalid/19">',
    "{{constructor.constructor('alert(20)')()}}",
    "javascript:alert(21)//",
    '<marquee onstart="window.__xss=22" data-xss>x</marquee>',
    '<form action="http://xss.invalid/23"><button data-xss>send</button></form>',
    '<base href="http://xss.invalid/24/">',
    "$\\href{javascript:alert(25)}{click}$",
    '<noscript><p title="</noscript><img src=x onerror=alert(26)>">',
    '<svg><animate onbegin="window.__xss=27" attributeName=x dur=1s data-xss>',
    "<iframe srcdoc=\"<script>parent.__xss=28</script>\" data-xss></iframe>",
    "<think><script>alert(29)</script></think> <final_answer>CSAT: 5/5</final_answer>",
    '<div style="background:url(http://xss.invalid/30.png)" data-xss>styled</div>',
]
ALL_PAYLOADS = "\n".join(PAYLOADS)

PAGES = ["", "data", "generate", "quality", "review", "train", "evaluate", "compare", "deploy", "jobs"]


# ---------------------------------------------------------------------------------------------
# The app and the browser
# ---------------------------------------------------------------------------------------------


class App:
    """`streamlit run app.py` on a free loopback port, engine thread on, its own home."""

    def __init__(self, home, log_path: Path, engine: bool = True):
        self.home, self.log_path, self.engine = home, log_path, engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "App":
        self.proc = start_app(self.home, self.port, self.log_path, engine=self.engine, new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class Browser:
    """One Chromium page that records dialogs and every request that leaves loopback."""

    def __init__(self, shots: Path):
        self.shots = shots
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.console_errors: list[str] = []
        self.n = 0

    def __enter__(self) -> "Browser":
        from playwright.sync_api import sync_playwright

        if not Path(CHROMIUM).exists():
            pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium (make browser)")
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
        self.page = self._browser.new_page(viewport={"width": 1400, "height": 1000})
        self.page.set_default_timeout(30_000)

        def on_dialog(dialog):
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_request(request):
            host = urlparse(request.url).hostname
            if request.url.startswith(("http:", "https:", "ws:", "wss:")) and host not in ("127.0.0.1", "localhost"):
                self.outside.append(request.url)

        self.page.on("dialog", on_dialog)
        self.page.on("request", on_request)
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        return self

    def __exit__(self, *exc) -> None:
        self._browser.close()
        self._pw.stop()

    # -- helpers -------------------------------------------------------------------------------

    def open(self, app: App, path: str, title: str) -> None:
        """Open a page by its URL and wait until its title is drawn and the script run is over."""
        self.page.goto(f"{app.url}/{path}")
        self.page.get_by_role("heading", name=title).first.wait_for(timeout=90_000)
        self.settle()

    def settle(self, timeout: float = 60) -> None:
        """Wait until Streamlit's "running" indicator has been gone for a moment."""
        calm_since = None
        deadline = time.time() + timeout
        while time.time() < deadline:
            running = self.page.locator('[data-testid="stStatusWidget"]').is_visible()
            if running:
                calm_since = None
            elif calm_since is None:
                calm_since = time.time()
            elif time.time() - calm_since > 0.8:
                return
            time.sleep(0.2)

    def no_exception(self, where: str) -> None:
        boxes = self.page.locator('[data-testid="stException"]')
        assert boxes.count() == 0, f"{where}: exception box: {boxes.first.inner_text()[:2000]}"

    def shot(self, name: str) -> Path:
        self.n += 1
        path = self.shots / f"{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def wait_text(self, pattern: str, timeout: float = 120) -> None:
        """Wait until the page shows text matching ``pattern`` (a regex), failing on an exception box."""
        locator = self.page.get_by_text(re.compile(pattern))

        def seen() -> bool:
            self.no_exception(f"waiting for {pattern!r}")
            # Tables keep an off-screen copy of their cells for screen readers: look for a visible match.
            return any(locator.nth(i).is_visible() for i in range(min(locator.count(), 30)))

        wait_for(seen, timeout, 0.5, f"text {pattern!r} on {self.page.url}")

    def fill(self, label: str, value, enter: bool = True) -> None:
        box = self.page.get_by_label(label, exact=True)
        box.fill(str(value))
        if enter:
            box.press("Enter")
        self.settle()

    def choose(self, label: str, option: str) -> None:
        """Pick ``option`` in the selectbox labelled ``label``. The menu sometimes closes again
        as soon as it opens (a rerun of the page redraws it): then it is opened again."""
        for attempt in range(4):
            self.page.get_by_label(label, exact=True).click()
            choice = self.page.get_by_role("option", name=option).first
            try:
                choice.wait_for(timeout=10_000)
                choice.click(timeout=10_000)
                break
            except Exception:
                if attempt == 3:
                    raise
                self.page.keyboard.press("Escape")
                self.settle()
        self.settle()

    def click(self, name: str) -> None:
        # A button with a keyboard shortcut carries the key in its name ("Approve A"): match the start.
        self.page.get_by_role("button", name=re.compile("^" + re.escape(name) + r"(\W|$)")).first.click()
        self.settle()


@pytest.fixture
def shots(artifacts_dir, request) -> Path:
    path = artifacts_dir / "browser" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.png"):
        old.unlink()
    return path


# ---------------------------------------------------------------------------------------------
# XSS payloads stay inert
# ---------------------------------------------------------------------------------------------


def _hostile_home(home) -> None:
    """The hostile text in every place the pages show: imported transcripts and answers, a dataset
    name, reasoning chains (model output), evaluation answers (model output)."""
    from fake_teacher_server import good_chain
    from phase3_fakes import FakeGenerator

    from engine.data import datasets

    from engine.evaluation import evaluate

    from engine.chains import acceptance, prompt, quality, selection

    from engine.core import store
    from engine.chains.chain import render_chain
    from engine.core.config import EvalConfig

    lines = []
    for i, payload in enumerate([ALL_PAYLOADS, *PAYLOADS]):
        for split in ("train", "test"):
            transcript = f"Agent: Hello, how can I help?\nCustomer: {payload}\nAgent: {payload} noted."
            lines.append({"messages": [{"role": "system", "content": "You analyse calls."},
                                       {"role": "user", "content": transcript + "\n\nRate the customer's CSAT (1-5)."},
                                       {"role": "assistant", "content": f"{payload}\nCSAT: {1 + i % 5}/5"}],
                          "meta": {"id": f"xss-{split}-{i}", "task": "csat", "split": split,
                                   "labels": {"csat": 1 + i % 5}}})
    path = home.data / "hostile.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    result = datasets.import_file(home, path, dataset="xss <img src=x onerror=alert(99) data-xss>")
    assert result["accepted"] == len(lines) and result["rejected"] == 0, result

    db = store.connect(home)
    ds_id, _ = selection.resolve_dataset(db, None)
    exs = selection.load_examples(db, selection.selection_ids(db, ds_id, "train", 6))
    chains = []
    for i, ex in enumerate(exs):
        if i % 2:  # a chain whose every section is hostile (flagged: no content the scorer credits)
            raw = render_chain({n: ALL_PAYLOADS for n in range(1, 6)}, {"Key Strengths": ALL_PAYLOADS},
                               {"Immediate Coaching": ALL_PAYLOADS}, ALL_PAYLOADS)
        else:  # a good chain with the payloads inside it
            raw = good_chain(prompt.free_messages(ex)[-1]["content"]).replace("See the reference answer.",
                                                                              ALL_PAYLOADS)
        text = prompt.finish_free(ex, raw)
        r = acceptance.score_for(ex, text)
        chains.append({"example_id": ex["id"], "prompt_version": "2-guided", "teacher": "smollm2-135m-instruct",
                       "text": text, "score": r["score"], "criteria": r["criteria"],
                       "status": "passed" if quality.passes(r) else "flagged", "attempts": 1,
                       "reasons": acceptance.stored_reasons(r["criteria"], "passed" if quality.passes(r) else "flagged")})
    assert store.save_generation_step(db, [], chains) == len(chains)
    gens = {"base-m": FakeGenerator(lambda m: ALL_PAYLOADS + "\nCSAT: 2/5"),
            "tuned-m": FakeGenerator(lambda m: "<think>" + ALL_PAYLOADS + "</think>\nCSAT: 4/5")}
    evaluate.run_evaluation(home, EvalConfig(model="tuned-m", base="base-m", limit=6), generators=gens)


def test_xss_payloads_stay_inert_on_every_page(home, tmp_path, shots):
    _hostile_home(home)
    with App(home, tmp_path / "app.log", engine=False) as app, Browser(shots) as b:
        titles = {"": "Pipeline", "data": "Data", "generate": "Generate reasoning chains", "quality": "Chain quality",
                  "review": "Review chains", "train": "Train", "evaluate": "Evaluate", "compare": "Compare",
                  "deploy": "Deploy", "jobs": "Jobs"}
        for path in PAGES:
            b.open(app, path, titles[path])
            b.no_exception(path or "pipeline")
            b.shot(f"xss-{path or 'pipeline'}")
        # Where the hostile text is drawn in full: the first example's transcript, a chain, the answers.
        b.open(app, "data", "Data")
        b.page.get_by_role("tab", name="Browse").click()
        b.settle()
        b.wait_text(re.escape("<script>window.__xss=1;alert(1)</script>"))
        b.shot("xss-data-transcript")
        b.open(app, "review", "Review chains")
        b.wait_text(re.escape('<svg onload="window.__xss=3" data-xss></svg>'))
        b.shot("xss-review-chain")
        b.open(app, "evaluate", "Evaluate")
        b.page.get_by_role("tab", name="Results").click()
        b.settle()
        b.shot("xss-evaluate-results")
        b.open(app, "compare", "Compare")
        b.wait_text(re.escape("<iframe src=\"javascript:parent.__xss=4\" data-xss></iframe>"))
        b.shot("xss-compare-transcript")
        time.sleep(1)  # give an onerror/onload/refresh a moment to fire, were anything rendered as HTML
        assert b.page.evaluate("window.__xss === undefined"), b.page.evaluate("window.__xss")
        assert b.page.locator("[data-xss]").count() == 0
        assert b.dialogs == [], b.dialogs
        assert b.outside == [], b.outside
        assert b.page.url.startswith(app.url), b.page.url  # no refresh/base redirect took the page away
    assert len(PAYLOADS) >= 25


# ---------------------------------------------------------------------------------------------
# The whole pipeline
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_walk_through_the_whole_pipeline(home, tmp_path, shots):
    import httpx

    from engine.core import store

    db = store.connect(home)
    with App(home, tmp_path / "app.log") as app, Browser(shots) as b:
        # 1. Data: create the demo dataset.
        b.open(app, "data", "Data")
        b.click("Create dataset")
        b.wait_text(r"Dataset demo-seed0: ", timeout=120)
        b.shot("data")
        b.open(app, "", "Pipeline")
        b.no_exception("pipeline")
        b.shot("pipeline")

        # 2. Generate: tiny sizes; a threshold no chain of this small teacher reaches, so both chains
        # of the run are flagged for review; the gate at 1 so the test on one example opens it.
        b.open(app, "generate", "Generate reasoning chains")
        # An invalid limit is refused with its reason, and both launches stay disabled.
        b.fill("Examples to generate (empty: all)", "abc")
        b.wait_text(r"a whole number from 1 up, or empty for all", timeout=30)
        assert b.page.get_by_role("button", name="Launch full run").is_disabled()
        assert b.page.get_by_role("button", name="Test on one example").is_disabled()
        b.shot("generate-invalid-limit")
        b.fill("Examples to generate (empty: all)", 2)
        b.fill("Examples per batch", 2)
        b.fill("Retry chains scoring below", 99)
        b.fill("Attempts per example", 1)
        b.fill("Test must score at least", 1)
        b.page.get_by_text("Sampling, batching and device").click()
        b.fill("Guided mode: tokens per part", 24)
        b.click("Test on one example")
        b.wait_text(r"Test score [\d.]+ passes the gate", timeout=300)
        b.wait_text(r"Gate passed", timeout=30)
        # The estimate is on the page before the launch (the test generation measured nothing yet).
        b.wait_text(r"Estimate: about .*2 examples at", timeout=30)
        b.shot("generate-test")
        b.click("Launch full run")
        # Progress inside the one batch (2 examples x 13 parts): the page's own progress text, read
        # whenever it changes, moves at least three times before the batch's first chain is stored.
        main = b.page.locator('[data-testid="stMain"]')
        batch_text = main.get_by_text(re.compile(r"batch of 2: "))
        seen: list[str] = []

        def sample() -> bool:
            b.no_exception("generating")
            if db.execute("SELECT COUNT(*) FROM chains").fetchone()[0]:
                return True  # the batch is over
            for i in range(batch_text.count()):
                m = re.search(r"batch of 2: [^·]+", batch_text.nth(i).inner_text())
                if m and (not seen or seen[-1] != m.group(0).strip()):
                    seen.append(m.group(0).strip())
            return False

        wait_for(sample, 600, 0.2, "the batch to end")
        assert len(seen) >= 3, seen
        b.wait_text(r"generated 2, passed 0, flagged 2", timeout=400)
        b.shot("generate-run")
        assert db.execute("SELECT COUNT(*) FROM chains WHERE status = 'flagged'").fetchone()[0] == 2

        # 3. Quality: the scores in the ten fixed bins, with n, and a small-sample warning.
        b.open(app, "quality", "Chain quality")
        b.no_exception("quality")
        hist = wait_for(lambda: next((f for f in _plotly_figures(b.page) if "Score distribution" in f["title"]), None),
                        60, 0.5, "the score histogram")
        assert hist["traces"][0]["x"] == [f"{x}-{x + 9}" for x in range(0, 90, 10)] + ["90-100"]
        assert hist["title"] == "Score distribution (2 chains)" and sum(hist["traces"][0]["y"]) == 2
        b.wait_text(r"Small sample: 2 chains", timeout=30)
        b.shot("quality")

        # 4. Review: decisions wait for a reviewer name (asked once); approve the first flagged
        # chain, export what is approved.
        b.open(app, "review", "Review chains")
        assert b.page.get_by_role("button", name=re.compile("^Approve")).is_disabled()
        assert b.page.get_by_role("button", name=re.compile("^Save edit and approve")).count() == 1
        b.fill("Your name (stored with every decision you take here)", "Walk Tester", enter=False)
        b.click("Save name")
        b.wait_text(r"Reviewing as", timeout=30)
        b.click("Approve")
        wait_for(lambda: db.execute("SELECT COUNT(*) FROM chains WHERE status = 'approved'").fetchone()[0] == 1,
                 30, 0.5, "one approved chain")
        assert db.execute("SELECT reviewer FROM reviews").fetchall() == [("Walk Tester",)]
        b.page.get_by_text("Include flagged chains").click()
        b.settle()
        b.click("Export chains for training")
        b.wait_text(r"Exported", timeout=60)
        b.shot("review")
        exported = [json.loads(x) for x in (home.data / "train_reasoning.jsonl").read_text().splitlines()]
        assert len(exported) >= 1

        # 5. Train two steps on that export; the loss curve shows.
        b.open(app, "train", "Train")
        b.choose("Preset", "smollm2_cpu (smollm2-135m-instruct)")
        overrides = b.page.get_by_label("Overrides (key=value, one a line)")
        overrides.fill("max_steps=2\nmax_length=512\ngradient_accumulation_steps=1\nlogging_steps=1\nsave_steps=1\neval_steps=0")
        b.page.get_by_label("Run name (optional)").fill("walk")
        b.page.get_by_label("Run name (optional)").press("Enter")
        b.settle(120)
        b.wait_text(r"Estimate: about .* tokens", timeout=180)  # the duration, before the launch
        b.click("Launch training")
        train_job = wait_for(lambda: db.execute("SELECT id FROM jobs WHERE kind = 'train'").fetchone(), 60, 1,
                             "the training job")[0]
        # Without any navigation the page shows the launched run, live, then its end.
        b.wait_text(r"(queued|running) · run walk · ", timeout=60)
        b.shot("train-launched")
        wait_for(lambda: store.get_job(db, train_job)["status"] in store.FINAL_JOB_STATES, 900, 2,
                 "the training run to end")
        assert store.get_job(db, train_job)["status"] == "succeeded", store.get_job(db, train_job)["error"]
        b.wait_text(r"succeeded · run walk · ", timeout=60)
        b.page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=60_000)
        b.settle()
        b.shot("train")

        # 6. Evaluate the run against its base on six test examples (one per task).
        b.open(app, "evaluate", "Evaluate")
        b.choose("Model", "run:walk")
        b.fill("Limit (0: all)", 6)
        b.fill("Max new tokens", 24)
        b.fill("Batch size", 3)
        b.wait_text(r"Estimate: about .*6 examples", timeout=60)  # before the launch
        b.click("Start evaluation")
        wait_for(lambda: db.execute("SELECT COUNT(*) FROM evaluations WHERE status = 'succeeded'").fetchone()[0] >= 2,
                 600, 2, "both evaluations")
        b.open(app, "evaluate", "Evaluate")
        b.page.get_by_role("tab", name="Results").click()
        b.settle()
        b.wait_text(r"Models by metric", timeout=60)
        # The confusion matrices: every class of the label space on both axes plus unparsed, a
        # count on every cell in a colour that contrasts with it, the sample size in the title.
        from engine.data import tasks

        for task, classes in (("CSAT", ["1", "2", "3", "4", "5"]), ("Churn risk", list(tasks.CHURN_LEVELS)),
                              ("Sentiment", list(tasks.SENTIMENTS)), ("Sentiment trajectory", list(tasks.TRAJECTORIES)),
                              ("Root cause", list(tasks.ROOT_CAUSES))):
            b.choose("Task", task)
            def drawn(task=task):  # both, base and tuned (one may be drawn a moment before the other)
                found = [f for f in _plotly_figures(b.page) if f["traces"][0]["type"] == "heatmap"
                         and f["title"].startswith(task + ":")]
                return found if len(found) == 2 else None

            heats = wait_for(drawn, 60, 0.5, f"the base and tuned {task} matrices")
            for h in heats:
                heat = h["traces"][0]
                assert heat["x"] == classes + ["unparsed"] and heat["y"] == classes, (heat["x"], heat["y"])
                n = sum(map(sum, heat["z"]))
                assert re.match(rf"{re.escape(task)}: {n} examples?, \d+ parsed", h["title"]), h["title"]
                assert len(h["annotations"]) == len(classes) * (len(classes) + 1)
                peak = max(max(r) for r in heat["z"])
                for a in h["annotations"]:
                    value = heat["z"][a["y"]][a["x"]]
                    assert a["text"] == str(value), (a, value)
                    assert a["color"] == ("#ffffff" if value / max(peak, 1) > 0.5 else
                                          ("#1f1f1f" if value else "#6b6b6b")), (a, value, peak)
        b.shot("evaluate")

        # 7. Compare: both models as local servers, one example, both answers.
        b.open(app, "compare", "Compare")
        b.choose("Model A (left)", "smollm2-135m-instruct")
        b.choose("Model B (right)", "run:walk")
        b.fill("Max tokens", 16)
        b.click("Start the models")
        wait_for(lambda: b.page.get_by_role("button", name="Run both").is_enabled(), 300, 1, "both servers ready")
        # One server per model, and a second visit reuses them: nothing more to start.
        assert db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'serve'").fetchone()[0] == 2
        b.open(app, "compare", "Compare")
        b.choose("Model A (left)", "smollm2-135m-instruct")
        b.choose("Model B (right)", "run:walk")
        b.wait_text(r"ready \(server job #\d+, started here\)", timeout=60)
        assert b.page.get_by_role("button", name="Start the models").is_disabled()
        b.fill("Max tokens", 16)
        b.wait_text(r"Reference answer", timeout=30)  # beside the outputs, before any run
        b.click("Run both")
        b.wait_text(r"Quality score", timeout=300)
        b.wait_text(r"tokens generated", timeout=60)
        b.settle(120)
        b.shot("compare")
        assert b.page.get_by_text("The server failed").count() == 0
        assert db.execute("SELECT COUNT(*) FROM jobs WHERE kind = 'serve'").fetchone()[0] == 2
        b.page.get_by_text("Servers", exact=True).click()
        b.click("Stop the servers started here")
        wait_for(lambda: all(j["status"] in store.FINAL_JOB_STATES for j in map(
            lambda r: store.get_job(db, r[0]), db.execute("SELECT id FROM jobs WHERE kind = 'serve'"))), 120, 1,
            "the compare servers to stop")

        # 8. Deploy: start the API server, call it with its key.
        b.open(app, "deploy", "Deploy")
        port = free_port()
        b.fill("Port", port, enter=False)
        b.page.get_by_role("button", name="Start server").click()
        b.settle()
        b.wait_text(r"curl", timeout=300)
        b.shot("deploy")
        wait_for(lambda: _health(port), 300, 1, "the API server's /health")
        from engine import api

        server = next(s for s in api.servers() if s["port"] == port)
        # The key is nowhere in the page's text (the snippets read $CCR_API_KEY) until it is shown.
        assert server["api_key"] not in b.page.inner_text("body")
        b.wait_text(re.escape("Bearer $CCR_API_KEY"), timeout=30)
        b.page.get_by_text("Show the key").click()
        b.wait_text(re.escape(server["api_key"]), timeout=30)
        b.shot("deploy-key")
        body = {"model": server["model"], "max_tokens": 8, "messages": [{"role": "user", "content": "Say hello."}]}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        assert httpx.post(url, json=body, timeout=60).status_code == 401
        reply = httpx.post(url, json=body, headers={"Authorization": f"Bearer {server['api_key']}"}, timeout=300)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"].strip()
        b.click("Stop server")
        wait_for(lambda: not _health(port), 120, 1, "the API server to stop")

        # 9. Another working dataset: no panel shows the first one's run, chains or gate.
        from engine.data import datasets

        datasets.synthesize(home, "demo", 1)
        b.open(app, "", "Pipeline")
        b.choose("Working dataset", "demo-seed1")
        b.open(app, "generate", "Generate reasoning chains")
        b.wait_text(r"Working dataset: demo-seed1", timeout=30)
        b.wait_text(r"No run on demo-seed1 yet\.", timeout=30)
        b.wait_text(r"No chains on demo-seed1 yet\.", timeout=30)
        assert b.page.get_by_text("Gate passed").count() == 0
        assert b.page.get_by_text("generated 2, passed 0, flagged 2").count() == 0
        assert b.page.get_by_role("button", name="Launch full run").is_disabled()
        b.shot("generate-other-dataset")

        # 10. Jobs: everything above ran as a job; none failed.
        b.open(app, "jobs", "Jobs")
        b.no_exception("jobs")
        b.shot("jobs")
        failed = db.execute("SELECT id, kind, error FROM jobs WHERE status = 'failed'").fetchall()
        assert not failed, failed
        assert b.dialogs == [] and b.outside == [], (b.dialogs, b.outside)


def _plotly_figures(page) -> list[dict]:
    """The plotly charts drawn on the page, read from the browser's own figure objects: each
    one's title (as text: Streamlit's theme wraps it in <b>; a <br> becomes a line break), traces
    (type, x, y, z) and annotations (position, text, font colour)."""
    figures = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
        title: ((el.layout || {}).title || {}).text || '',
        traces: (el.data || []).map(t => ({type: t.type || 'scatter', x: t.x, y: t.y, z: t.z})),
        annotations: ((el.layout || {}).annotations || []).map(a => ({x: a.x, y: a.y, text: a.text,
                                                                       color: (a.font || {}).color})),
    }))""")
    for f in figures:
        f["title"] = re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "\n", f["title"]))
    return figures


def _health(port: int) -> bool:
    import httpx

    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
