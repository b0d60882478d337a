#!/usr/bin/env python3
"""A tool-using LLM agent made durable by hand, with the standard library only.

It asks an OpenAI-compatible chat API (OPENAI_BASE_URL) a research question,
runs the tools the model asks for (REBOUND_TOOLS_URL/<name>), and prints the
model's final answer. After every LLM answer and every tool result it
checkpoints the whole conversation to SQLite, keyed by REBOUND_RUN_ID (the
workflow id, stable across restarts), so a process killed anywhere and
started again resumes with the same history: at most the call that was in
flight is made again. Side-effecting tool calls carry an Idempotency-Key
derived from the run and the tool call id, so redoing one takes no effect
twice.

    OPENAI_BASE_URL=... REBOUND_TOOLS_URL=... REBOUND_RUN_ID=job-1 \\
        python3 examples/python-durable/agent.py

Environment: OPENAI_BASE_URL, OPENAI_API_KEY, REBOUND_TOOLS_URL,
REBOUND_RUN_ID (default "local"), REBOUND_ATTEMPT and REBOUND_LAST_FAILURE
(only logged), CHECKPOINT_DB (default $REBOUND_STORE/checkpoints.sqlite, else
./checkpoints.sqlite), AGENT_MAX_TURNS (LLM calls at most, default 20).
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
    print(f"python-durable: {msg}", file=sys.stderr, flush=True)


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


class Checkpoints:
    """The conversation of each run, in SQLite (one row per run id)."""

    def __init__(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, "
                        "messages TEXT NOT NULL, final TEXT)")
        self.db.commit()

    def load(self, run_id):
        row = self.db.execute("SELECT messages, final FROM runs WHERE run_id = ?",
                              (run_id,)).fetchone()
        return (json.loads(row[0]), row[1]) if row else (None, None)

    def save(self, run_id, messages, final=None):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?)",
                            (run_id, json.dumps(messages), final))


def run_tool(tools_url, run_id, call):
    name = call["function"]["name"]
    args = json.loads(call["function"]["arguments"] or "{}")
    headers = {}
    if name in SIDE_EFFECTS:
        headers["Idempotency-Key"] = f"{run_id}:{call['id']}"
    return post(f"{tools_url}/{name}", args, headers)


def main():
    base = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY", "")
    tools_url = os.environ.get("REBOUND_TOOLS_URL", base.rsplit("/v1", 1)[0] + "/tools")
    run_id = os.environ.get("REBOUND_RUN_ID", "local")
    max_turns = int(os.environ.get("AGENT_MAX_TURNS", "20"))
    store = os.environ.get("REBOUND_STORE")
    db_path = os.environ.get("CHECKPOINT_DB") or (
        os.path.join(store, "checkpoints.sqlite") if store else "checkpoints.sqlite")
    if os.environ.get("REBOUND_LAST_FAILURE"):
        log(f"attempt {os.environ.get('REBOUND_ATTEMPT')} after "
            f"{os.environ['REBOUND_LAST_FAILURE']}")

    cp = Checkpoints(db_path)
    messages, final = cp.load(run_id)
    if final is not None:
        print(f"final: {final}")
        return 0
    if messages is None:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": QUESTION}]
        cp.save(run_id, messages)
    else:
        log(f"resuming run '{run_id}' with {len(messages)} messages")

    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(max_turns):
        last = messages[-1]
        # Tool calls of the last answer that have no result yet (the process
        # died while running them): run them first.
        if last["role"] == "assistant" or last["role"] == "tool":
            pending = []
            for m in reversed(messages):
                if m["role"] == "assistant":
                    done = {t["tool_call_id"] for t in messages if t["role"] == "tool"}
                    pending = [c for c in m.get("tool_calls") or [] if c["id"] not in done]
                    break
            for call in pending:
                result = run_tool(tools_url, run_id, call)
                messages.append({"role": "tool", "tool_call_id": call["id"],
                                 "content": json.dumps(result, sort_keys=True)})
                cp.save(run_id, messages)
        answer = post(f"{base}/chat/completions",
                      {"model": "gpt-4o-mini", "messages": messages, "tools": TOOLS},
                      headers)
        msg = answer["choices"][0]["message"]
        kept = {"role": "assistant", "content": msg.get("content")}
        if msg.get("tool_calls"):
            kept["tool_calls"] = msg["tool_calls"]
        messages.append(kept)
        if not msg.get("tool_calls"):
            cp.save(run_id, messages, final=msg.get("content") or "")
            print(f"final: {msg.get('content')}")
            return 0
        cp.save(run_id, messages)
    log(f"no final answer after {max_turns} LLM calls")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a clear line, not a traceback, for the operator
        log(f"failed: {e}")
        sys.exit(1)
