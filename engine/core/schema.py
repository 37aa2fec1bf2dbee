"""The database schema: every migration, in the order it is applied, and the job states the
``jobs.status`` column holds (store.py, jobs.py, the CLI and the pages use JobState).

Why a module of its own: the schema is long and declarative, and store.py (the functions that
read and write the tables) is easier to follow without it. A migration, once released, is never
edited: a database that already applied it would not see the change. A new column or table is a
new ``@migrations()`` function appended at the end; ``sqlite_utils`` applies each once, in
registration order (store.migrate holds a file lock around it).
"""

from __future__ import annotations

from enum import StrEnum

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations


class JobState(StrEnum):
    """A job's status. A str enum, so a state equals its stored string (``"queued" ==
    JobState.QUEUED``) and rows, JSON and comparisons with plain strings keep working."""

    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    INTERRUPTED = "interrupted"


# A job that still holds (or will hold) a worker; the one list of them. ACTIVE_SQL is the same
# set as an SQL IN-list: ``... WHERE status IN {ACTIVE_SQL}``.
ACTIVE_JOB_STATES = (JobState.QUEUED, JobState.RUNNING, JobState.PAUSING)
FINAL_JOB_STATES = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.PAUSED, JobState.INTERRUPTED)
ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in ACTIVE_JOB_STATES) + ")"


migrations = Migrations("ccr")


@migrations()
def m001_initial(db: Database) -> None:
    db.execute(
        """CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL,            -- synth | import
            source TEXT,                   -- folder or file it came from
            preset TEXT,
            seed INTEGER,
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE examples (
            id INTEGER PRIMARY KEY,
            dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
            split TEXT NOT NULL,
            ex_id TEXT NOT NULL,           -- meta.id, unique within a dataset
            task TEXT,
            messages TEXT NOT NULL,        -- JSON list, stored verbatim
            meta TEXT NOT NULL,            -- JSON object (id, task, labels, events, ...)
            labels TEXT NOT NULL,          -- JSON object
            transcript TEXT NOT NULL,      -- the call transcript as plain text
            source_file TEXT,
            source_line INTEGER,
            created_at REAL NOT NULL,
            UNIQUE (dataset_id, ex_id)
        )"""
    )
    db.execute("CREATE INDEX examples_split_task ON examples (dataset_id, split, task)")
    db.execute(
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,            -- synth | import | generate | train | eval | infer | serve | demo
            title TEXT,
            config TEXT NOT NULL,          -- JSON
            status TEXT NOT NULL,          -- queued | running | pausing | succeeded | failed | cancelled | paused | interrupted
            progress REAL NOT NULL DEFAULT 0,   -- 0..1
            stats TEXT NOT NULL DEFAULT '{}',   -- JSON: done, total, rates, eta, ...
            heartbeat REAL,
            pid INTEGER,
            worker TEXT,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            pause_requested INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            log_path TEXT,
            log_tail TEXT,
            result TEXT,                   -- JSON
            dedupe_key TEXT,
            runs INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        )"""
    )
    db.execute("CREATE INDEX jobs_status ON jobs (status, id)")
    # Two people pressing Start at once make one job: an active job's dedupe key is unique.
    # (The IN-list is ACTIVE_SQL as of this migration; a migration is never edited.)
    db.execute(
        "CREATE UNIQUE INDEX jobs_active_dedupe ON jobs (dedupe_key) "
        "WHERE dedupe_key IS NOT NULL AND status IN ('queued', 'running', 'pausing')"
    )
    db.execute(
        """CREATE TABLE chains (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            prompt_version TEXT NOT NULL,
            teacher TEXT NOT NULL,
            text TEXT NOT NULL,
            score REAL NOT NULL,
            criteria TEXT NOT NULL,        -- JSON: per-criterion points and reasons
            status TEXT NOT NULL,          -- passed | flagged | approved | rejected
            attempts INTEGER NOT NULL,
            tokens INTEGER,
            seconds REAL,
            job_id INTEGER,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (example_id, prompt_version, teacher)
        )"""
    )
    db.execute("CREATE INDEX chains_status ON chains (status, score)")
    db.execute(
        """CREATE TABLE chain_attempts (
            id INTEGER PRIMARY KEY,
            example_id INTEGER NOT NULL REFERENCES examples(id) ON DELETE CASCADE,
            prompt_version TEXT NOT NULL,
            teacher TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            text TEXT NOT NULL,
            score REAL NOT NULL,
            criteria TEXT NOT NULL,
            sampling TEXT NOT NULL,        -- JSON: temperature, top_p, seed, mode
            tokens INTEGER,
            seconds REAL,
            job_id INTEGER,
            created_at REAL NOT NULL,
            UNIQUE (example_id, prompt_version, teacher, attempt)
        )"""
    )
    db.execute(
        """CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            chain_id INTEGER NOT NULL REFERENCES chains(id) ON DELETE CASCADE,
            decision TEXT NOT NULL,        -- approve | reject | edit
            edited_text TEXT,
            score_before REAL,
            score_after REAL,
            reviewer TEXT,
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE gate_tests (
            id INTEGER PRIMARY KEY,
            example_id INTEGER,
            teacher TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            config TEXT NOT NULL,
            text TEXT,
            score REAL,
            criteria TEXT,
            override INTEGER NOT NULL DEFAULT 0,   -- 1: the user launched without a passing test
            reason TEXT,
            created_at REAL NOT NULL
        )"""
    )
    db.execute(
        """CREATE TABLE train_runs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            job_id INTEGER,
            config TEXT NOT NULL,
            base_model TEXT NOT NULL,
            data_path TEXT,
            data_hash TEXT,
            status TEXT NOT NULL,
            dir TEXT NOT NULL,
            final_metrics TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        )"""
    )
    db.execute(
        """CREATE TABLE train_metrics (
            id INTEGER PRIMARY KEY,
            run_name TEXT NOT NULL,
            step INTEGER NOT NULL,
            kind TEXT NOT NULL,            -- train | eval
            epoch REAL,
            loss REAL,
            learning_rate REAL,
            grad_norm REAL,
            tokens_per_s REAL,
            memory_mb REAL,
            extra TEXT,
            created_at REAL NOT NULL,
            UNIQUE (run_name, step, kind)
        )"""
    )
    db.execute(
        """CREATE TABLE evaluations (
            id INTEGER PRIMARY KEY,
            job_id INTEGER,
            model TEXT NOT NULL,
            data_path TEXT,
            n INTEGER,
            status TEXT NOT NULL,
            metrics TEXT,
            report_path TEXT,
            created_at REAL NOT NULL,
            finished_at REAL
        )"""
    )
    db.execute(
        """CREATE TABLE eval_predictions (
            id INTEGER PRIMARY KEY,
            evaluation_id INTEGER NOT NULL REFERENCES evaluations(id) ON DELETE CASCADE,
            example_key TEXT NOT NULL,
            task TEXT,
            output TEXT NOT NULL,
            parsed TEXT,
            labels TEXT,
            score REAL,
            criteria TEXT,
            correct INTEGER,
            created_at REAL NOT NULL,
            UNIQUE (evaluation_id, example_key)
        )"""
    )
    db.execute(
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_at REAL NOT NULL
        )"""
    )


@migrations()
def m_import_001_raw_line(db: Database) -> None:
    """An imported JSONL line's own text (NULL for CSV rows and older imports): the export
    writes it back, so a line is kept verbatim, fields the product does not read included."""
    db.execute("ALTER TABLE examples ADD COLUMN raw TEXT")


@migrations()
def m_eval_001_evaluation_keys(db: Database) -> None:
    """What a resumed evaluation needs: its settings and a key to find it again (run_key), the
    evaluation it is compared with, and per prediction the prompt, structure and token count."""
    db.execute("ALTER TABLE evaluations ADD COLUMN config TEXT")
    db.execute("ALTER TABLE evaluations ADD COLUMN run_key TEXT")
    db.execute("ALTER TABLE evaluations ADD COLUMN compare_to INTEGER")
    db.execute("CREATE INDEX evaluations_run_key ON evaluations (run_key, status)")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN position INTEGER")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN prompt TEXT")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN reference TEXT")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN structure TEXT")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN completion_tokens INTEGER")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN finish_reason TEXT")
    db.execute("ALTER TABLE eval_predictions ADD COLUMN seconds REAL")


@migrations()
def m_eval_002_faithfulness(db: Database) -> None:
    """Per prediction, the faithfulness of the answer (``evaluate.answer_faithfulness``: counts of
    contradictions and unsupported specifics, faithful, judged). NULL for predictions stored
    before: ``evaluate.predictions`` computes it from the stored answer on read."""
    db.execute("ALTER TABLE eval_predictions ADD COLUMN faithfulness TEXT")


@migrations()
def m_faith_001_chain_reasons(db: Database) -> None:
    """Why each chain falls short (``quality.reasons``: contradiction, invented, form), stored as
    ",contradiction,invented," so the review list filters with one LIKE. Chains stored before
    stay NULL here: the chains side derives theirs from the stored breakdown the first time it
    reads them (``engine.chains.acceptance.fill_missing_reasons``), since the rules are the quality scorer's
    and core does not import it. One scored before the faithfulness checks can only show
    ``form`` (re-score it by editing, or generate again under a new prompt version)."""
    db.execute("ALTER TABLE chains ADD COLUMN reasons TEXT")


@migrations()
def m_faith_002_missing_reasons_index(db: Database) -> None:
    """A partial index on the chains still without reasons: ``fill_missing_reasons`` runs before
    every read of chains (list, detail, quality report, selection), and without it each of those
    reads scanned the whole chains table, transcripts and all, to find none."""
    db.execute("CREATE INDEX chains_missing_reasons ON chains (id) WHERE reasons IS NULL")


def reasons_text(reasons) -> str:
    """``["contradiction", "invented"]`` -> ``",contradiction,invented,"``; none -> ``""``."""
    reasons = list(reasons or [])
    return "," + ",".join(reasons) + "," if reasons else ""
