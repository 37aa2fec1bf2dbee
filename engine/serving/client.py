"""The HTTP client of a ``ccr serve`` server (its OpenAI-compatible chat API): streamed chats for
the Compare and Deploy pages, and the copyable snippets that show how to call it. Imports
httpx only when a chat is streamed."""

from __future__ import annotations

import json
import time


def api_snippets(url: str, api_key: str | None, model: str, reveal: bool = False) -> dict:
    """Copyable curl and openai-client snippets for a running server. The key is never in them
    unless ``reveal``: they read it from the environment variable CCR_API_KEY instead."""
    masked = bool(api_key) and not reveal
    key_expr = 'os.environ["CCR_API_KEY"]' if masked else f'"{api_key or "none"}"'
    shell_key = "$CCR_API_KEY" if masked else api_key
    auth = f" \\\n  -H \"Authorization: Bearer {shell_key}\"" if api_key else ""
    curl = (f"curl {url}/v1/chat/completions \\\n  -H 'Content-Type: application/json'{auth} \\\n"
            f"  -d '{{\"model\": \"{model}\", \"max_tokens\": 256, \"messages\": "
            f"[{{\"role\": \"user\", \"content\": \"Call transcript: ... Predict the CSAT.\"}}]}}'")
    python = (("import os\n" if masked else "") +
              f"from openai import OpenAI\n\nclient = OpenAI(base_url=\"{url}/v1\", api_key={key_expr})\n"
              f"reply = client.chat.completions.create(\n    model=\"{model}\",\n"
              f"    messages=[{{\"role\": \"user\", \"content\": \"Call transcript: ... Predict the CSAT.\"}}],\n"
              f"    max_tokens=256,\n)\nprint(reply.choices[0].message.content)\n\n"
              f"# streamed\nfor chunk in client.chat.completions.create(model=\"{model}\", messages=[...], "
              f"stream=True):\n    print(chunk.choices[0].delta.content or \"\", end=\"\")")
    return {"curl": curl, "python": python}


def stream_chat(url: str, api_key: str | None, model: str, messages: list[dict], max_tokens: int = 256,
                temperature: float = 0.0, timeout_s: float = 600.0, stats: dict | None = None):
    """Yield the text pieces of one streamed chat completion from a ``ccr serve`` server.

    ``stats`` (a dict) receives what the server reports at the end: ``prompt_tokens``,
    ``completion_tokens`` (its usage chunk) and ``finish_reason``."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"model": model, "messages": messages, "max_tokens": int(max_tokens), "temperature": temperature,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, headers=headers,
                      timeout=httpx.Timeout(timeout_s, connect=10.0)) as r:
        if r.status_code != 200:
            r.read()
            try:
                message = r.json()["error"]["message"]
            except Exception:
                message = r.text[:200]
            raise RuntimeError(f"server answered {r.status_code}: {message}")
        for line in r.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            obj = json.loads(data)
            if "error" in obj:
                raise RuntimeError(obj["error"].get("message", "server error"))
            if stats is not None and obj.get("usage"):
                stats.update({k: obj["usage"].get(k) for k in ("prompt_tokens", "completion_tokens")})
            for choice in obj.get("choices", []):
                if stats is not None and choice.get("finish_reason"):
                    stats["finish_reason"] = choice["finish_reason"]
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    yield piece


def stream_pair(specs: list[dict], stats: list[dict] | None = None):
    """Stream several chats at once: yields (index, piece) as pieces arrive, (index, None) when one
    ends and (index, Exception) when one fails. Each spec holds ``stream_chat``'s arguments.

    ``stats`` (one dict per spec) receives each stream's ``first_token_s`` and ``seconds`` (from
    its request, measured in its own thread) and the server's token counts (``stream_chat``)."""
    import queue
    import threading

    events: queue.Queue = queue.Queue()

    def pump(i: int, spec: dict) -> None:
        own = stats[i] if stats is not None else {}
        start = time.perf_counter()
        try:
            for piece in stream_chat(**spec, stats=own):
                own.setdefault("first_token_s", time.perf_counter() - start)
                events.put((i, piece))
            own["seconds"] = time.perf_counter() - start
            events.put((i, None))
        except Exception as exc:  # shown beside that model's answer
            own["seconds"] = time.perf_counter() - start
            events.put((i, exc))

    for i, spec in enumerate(specs):
        threading.Thread(target=pump, args=(i, spec), daemon=True).start()
    left = len(specs)
    while left:
        i, item = events.get()
        if item is None or isinstance(item, Exception):
            left -= 1
        yield i, item
