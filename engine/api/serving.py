"""The Deploy and Compare pages' entry points: API servers (``ccr serve``) and batch inference
(``ccr infer``). The HTTP client the pages talk to a server with is engine/serving/client.py."""

from __future__ import annotations

import os

from engine import queries
from engine.api.common import db, enqueue, home, run_job
from engine.core import store
from engine.data import uploads


def new_api_key() -> str:
    import secrets

    return "ccr-" + secrets.token_urlsafe(24)


def start_server(model: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                 max_queue: int = 64, max_batch: int = 8, idle_shutdown_s: float = 0.0,
                 dedupe_key: str | None = None) -> int:
    """Queue a ``serve`` job (a service: it runs beside batch jobs). Refuses an exposed address
    without a key, like ``ccr serve``."""
    from engine.serving import serve

    serve.check_bind(host, api_key)  # ServeError is a ValueError: the page shows it
    if port:
        same = check_port_free(host, int(port), {"model": model, "host": host, "api_key": api_key or None})
        if same:  # the same server asked for again (a double press): that job
            return same
    config = {"model": model, "host": host, "port": int(port), "api_key": api_key or None,
              "max_queue": int(max_queue), "max_batch": int(max_batch), "idle_shutdown_s": float(idle_shutdown_s)}
    return enqueue("serve", config, f"serve {model} on {host}:{port}",
                    dedupe_key=dedupe_key or (f"serve:{host}:{port}" if port else None))


def check_port_free(host: str, port: int, wanted: dict | None = None) -> int | None:
    """ValueError saying why ``host:port`` cannot take a new server: another of ours is queued or
    running there, or another program listens on it (checked by binding it, as the server would).
    Returns the job id when the active server there is ``wanted`` itself (same model, host and
    key: a second press of the same Start), else None."""
    import socket

    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port}: a port is a number from 1 to 65535 (or 0 for any free one)")
    for job_id, c in queries.active_servers(db()):
        if int(c.get("port") or 0) == int(port):
            if wanted and all(c.get(k) == v for k, v in wanted.items()):
                return job_id
            raise ValueError(f"port {port} is taken by server job #{job_id} ({c.get('model')} on {c.get('host')}): "
                             "stop it first, or pick another port")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"host {host!r}: {exc.strerror or exc}") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            raise ValueError(f"port {port} on {host} is in use by another program ({exc.strerror or exc}): pick "
                             "another port, or 0 for any free one") from None
    return None


def server_info(job_id: int) -> dict | None:
    """A serve job's state for the pages: status, ready, url (base URL, without /v1), key, model."""
    job = store.get_job(db(), job_id)
    if not job or job["kind"] != "serve":
        return None
    stats = job["stats"] or {}
    ready = job["status"] == "running" and stats.get("state") == "ready" and bool(stats.get("url"))
    return {"job_id": job_id, "status": job["status"], "ready": ready, "url": stats.get("url"),
            "api_key": job["config"].get("api_key"), "model": job["config"].get("model"),
            "host": job["config"].get("host"), "port": job["config"].get("port"), "error": job.get("error"),
            "served": stats.get("served", 0), "rejected": stats.get("rejected", 0), "queue": stats.get("queue", 0),
            "compare": (job.get("dedupe_key") or "").startswith(COMPARE_KEY)}


def servers(include_finished: bool = False) -> list[dict]:
    """Serve jobs (active ones, or the last 20 of any state)."""
    return [s for s in (server_info(i) for i in queries.server_job_ids(db(), include_finished)) if s]


COMPARE_KEY = "compare-serve:"  # the dedupe key of the servers the Compare page starts (it may stop those only)


def find_server(model: str) -> dict | None:
    """An active server of ``model`` (``server_info``), whoever started it (Deploy, Compare,
    `ccr serve` through the queue): a ready one first, else the newest queued or starting one."""
    found = [s for s in servers() if s["model"] == model]
    return next((s for s in found if s["ready"]), found[0] if found else None)


def compare_servers(model_names_: list[str], idle_shutdown_s: float = 900.0) -> dict[str, int]:
    """A server per model for the Compare page: an active server of the same model is reused
    (one model process, not one per page or per press); otherwise a short-lived loopback server
    is started, which stops itself after ``idle_shutdown_s`` without requests."""
    out = {}
    for name in dict.fromkeys(model_names_):
        running = find_server(name)
        out[name] = running["job_id"] if running else start_server(
            name, "127.0.0.1", 0, new_api_key(), max_queue=8, max_batch=1, idle_shutdown_s=idle_shutdown_s,
            dedupe_key=COMPARE_KEY + name)
    return out


def start_infer(model: str, content: bytes | None = None, filename: str | None = None, path: str | None = None,
                batch_size: int = 8, max_new_tokens: int = 512) -> int:
    """Queue batch inference over an uploaded file (``content``) or a file under an allowed folder."""
    if content is not None:
        source = uploads.save_upload(home(), content, filename, "input.jsonl")
    elif path:
        from engine.core import model_catalog as m

        source = m.check_path_allowed(path, home(), "input file")
        if not source.is_file():
            raise ValueError(f"{path}: no such file")
    else:
        raise ValueError("give a file to upload or a path")
    out = home().data / "infer" / f"{source.stem}-{uploads.safe_name(model)}.out.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = {"model": model, "input": str(source), "output": str(out), "batch_size": int(batch_size),
              "max_new_tokens": int(max_new_tokens)}
    return enqueue("infer", config, f"batch inference {source.name} with {model}", dedupe_key=f"infer:{out}")


def check_bind(host: str, api_key: str | None) -> None:
    """ServeError (a ValueError) for an exposed address without a key (``serve.check_bind``)."""
    from engine.serving import serve

    serve.check_bind(host, api_key)


def run_server(config: dict) -> dict:
    """``ccr serve``: serve in this process until stopped (``config`` as the serve job's); the job row."""
    return run_job("serve", config, f"serve {config['model']} on {config['host']}:{config['port']}")


def run_infer(config: dict) -> dict:
    """``ccr infer``: batch inference in this process (``config`` as the infer job's); the job row."""
    title = f"batch inference {os.path.basename(config['input'])} with {config['model']}"
    return run_job("infer", config, title, echo=False)
