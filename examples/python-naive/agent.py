#!/usr/bin/env python3
"""The agent of examples/python-durable WITHOUT durability (deliberately).

It asks an OpenAI-compatible chat API (OPENAI_BASE_URL) the same research
question, runs the tools the model asks for (REBOUND_TOOLS_URL/<name>) and
prints the final answer, but keeps its conversation only in memory and sends
no idempotency keys. Killed and started again, it begins from the first
message: every LLM call made before the kill is paid for again, and every
side effect before it happens twice. `rebound audit` shows both on the wire.

    OPENAI_BASE_URL=... REBOUND_TOOLS_URL=... python3 examples/python-naive/agent.py

Environment: OPENAI_BASE_URL, OPENAI_API_KEY, REBOUND_TOOLS_URL,
AGENT_MAX_TURNS (LLM calls at most, default 20).
"""
import json
import os
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


def log(msg):
    print(f"python-naive: {msg}", file=sys.stderr, flush=True)


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


def main():
    base = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1").rstrip("/")
    key = os.environ.get("OPENAI_API_KEY", "")
    tools_url = os.environ.get("REBOUND_TOOLS_URL", base.rsplit("/v1", 1)[0] + "/tools")
    max_turns = int(os.environ.get("AGENT_MAX_TURNS", "20"))

    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": QUESTION}]
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
            args = json.loads(call["function"]["arguments"] or "{}")
            result = post(f"{tools_url}/{call['function']['name']}", args)
            messages.append({"role": "tool", "tool_call_id": call["id"],
                             "content": json.dumps(result, sort_keys=True)})
    log(f"no final answer after {max_turns} LLM calls")
    return 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # a clear line, not a traceback, for the operator
        log(f"failed: {e}")
        sys.exit(1)
