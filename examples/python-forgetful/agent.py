#!/usr/bin/env python3
"""The agent of examples/python-durable with a common durability bug
(deliberately): it checkpoints its progress but not its conversation.

It asks an OpenAI-compatible chat API (OPENAI_BASE_URL) the same research
question and runs the tools the model asks for (REBOUND_TOOLS_URL/<name>).
After every tool result it saves the result (its "notes") to SQLite, keyed by
REBOUND_RUN_ID, so a restarted process does not lose what it found. But on
resume it rebuilds the conversation from the question and a summary of its
notes: the model's own turns and the tool messages are gone. The requests it
sends after a restart differ from the ones an uninterrupted run sends, and so
does its final answer: `rebound audit` flags `context: lost` and names the
first request where the history diverged.

    OPENAI_BASE_URL=... REBOUND_TOOLS_URL=... REBOUND_RUN_ID=job-1 \\
        python3 examples/python-forgetful/agent.py

Environment: as examples/python-durable/agent.py.
"""
import json
import os
import sqlite3
import sys
import time
import urllib.error
import urllib.request

SYSTEM = "You are a careful research assistant. Use the tools, then answer."
QUESTION = "Find out who maintains the durable workflow engines, and mail it."
TOOLS = [
    {"type": "function", "function": {
        "name": "search", "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "fetch", "description": "Fetch a page",
        "parameters": {"type": "object", "properties": {"url": {"type": "string"}},
                       "required": ["url"]}}},
    {"type": "function", "function": {
        "name": "send_email", "description": "Send the findings (a side effect)",
        "parameters": {"type": "object",
                       "properties": {"to": {"type": "string"},
                                      "subject": {"type": "string"}},
                       "required": ["to", "subject"]}}},
]
SIDE_EFFECTS = {"write_record", "send_email"}


def log(msg):
    print(f"python-forgetful: {msg}", file=sys.stderr, flush=True)


def post(url, body, headers=None, tries=5):
    """POSTs JSON and returns the decoded answer; retries connection errors,
    5xx and 429 a bounded number of times."""
    data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(headers or {})
    delay = 0.2
    for attempt in range(1, tries + 1):
        req = urllib.request.Request(url, data=data, headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            if e.code != 429 and e.code < 500 or attempt == tries:
                raise
            wait = float(e.headers.get("Retry-After") or delay)
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            if attempt == tries:
                raise
            wait = delay
        log(f"'{url}' failed, retry {attempt} in {wait:.1f}s")
        time.sleep(wait)
        delay *= 2
    raise RuntimeError("unreachable")


class Notes:
    """The tool results of each run, in SQLite: progress, not the conversation."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS notes (run_id TEXT, call_id TEXT, "
                        "tool TEXT, result TEXT, PRIMARY KEY (run_id, call_id))")
        self.db.commit()

    def load(self, run_id):
        return self.db.execute("SELECT tool, result FROM notes WHERE run_id = ? "
                               "ORDER BY rowid", (run_id,)).fetchall()

    def add(self, run_id, call_id, tool, result):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO notes VALUES (?, ?, ?, ?)",
                            (run_id, call_id, tool, result))


def main():
    base = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY", "")
    tools_url = os.environ.get("REBOUND_TOOLS_URL", base.rsplit("/v1", 1)[0] + "/tools")
    run_id = os.environ.get("REBOUND_RUN_ID", "local")
    max_turns = int(os.environ.get("AGENT_MAX_TURNS", "20"))
    store = os.environ.get("REBOUND_STORE")
    db_path = os.environ.get("CHECKPOINT_DB") or (
        os.path.join(store, "checkpoints.sqlite") if store else "checkpoints.sqlite")

    notes = Notes(db_path)
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION}]
    earlier = notes.load(run_id)
    if earlier:
        # The bug: the model's turns and the tool messages are not restored,
        # only a summary of what the tools returned.
        log(f"resuming run '{run_id}' from {len(earlier)} notes")
        summary = "\n".join(f"- {tool}: {result}" for tool, result in earlier)
        messages.append({"role": "user", "content": f"Notes so far:\n{summary}"})

    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(max_turns):
        answer = post(f"{base}/chat/completions",
                      {"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS},
                      headers)
        msg = answer["choices"][0]["message"]
        kept = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            kept["tool_calls"] = msg["tool_calls"]
        messages.append(kept)
        if not msg.get("tool_calls"):
            print(f"final: {msg.get('content')}")
            return 0
        for call in msg["tool_calls"]:
            name = call["function"]["name"]
            args = json.loads(call["function"]["arguments"] or "{}")
            hdrs = {"Idempotency-Key": f"{run_id}:{call['id']}"} \
                if name in SIDE_EFFECTS else None
            result = json.dumps(post(f"{tools_url}/{name}", args, hdrs), sort_keys=True)
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": result})
            notes.add(run_id, call["id"], name, result)
    log(f"no final answer after {max_turns} LLM calls")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a clear line, not a traceback, for the operator
        log(f"failed: {e}")
        sys.exit(1)
