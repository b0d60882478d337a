// Drives the world with the official `openai` npm client, unchanged but for
// its base URL: models, the tool-call loop, determinism, streaming (text and
// tool calls), error bodies, and the client's own retries through injected
// faults (429 with Retry-After, 5xx, reset). Run by test_world_openai.sh as
//   node openai_client.mjs BASE_URL TURNS
// Exits non-zero with a message on the first failed check.
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { VERSION } from 'openai/version';

const [baseURL, turnsArg] = process.argv.slice(2);
const turns = Number(turnsArg);
const root = baseURL.replace(/\/v1$/, '');
const client = new OpenAI({ baseURL, apiKey: 'not-a-real-key', timeout: 20000, maxRetries: 2 });

const tools = [{
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'weather for a city',
    parameters: {
      type: 'object',
      properties: {
        city: { type: 'string', enum: ['Oslo', 'Lima'] },
        days: { type: 'integer' },
      },
      required: ['city', 'days'],
    },
  },
}];

async function control(method, path, body) {
  const res = await fetch(root + path, { method, body: body && JSON.stringify(body) });
  const text = await res.text();
  assert.equal(res.status, 200, `${method} ${path}: ${text}`);
  return text;
}

// models
const models = await client.models.list();
assert.ok(models.data.some((m) => m.id === 'rebound-world'), 'rebound-world is listed');

// the tool loop: `turns` tool calls, then a final answer
const messages = [{ role: 'user', content: 'What is the weather in Oslo?' }];
let calls = 0;
let final = null;
for (let i = 0; i < 20 && !final; i++) {
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
  assert.equal(r.object, 'chat.completion');
  assert.ok(r.usage.total_tokens === r.usage.prompt_tokens + r.usage.completion_tokens);
  const choice = r.choices[0];
  if (choice.finish_reason === 'tool_calls') {
    const tc = choice.message.tool_calls[0];
    assert.equal(tc.function.name, 'get_weather');
    const args = JSON.parse(tc.function.arguments);
    assert.ok(['Oslo', 'Lima'].includes(args.city) && Number.isInteger(args.days));
    messages.push(choice.message);
    messages.push({ role: 'tool', tool_call_id: tc.id, content: '{"temp": 3}' });
    calls++;
  } else {
    assert.equal(choice.finish_reason, 'stop');
    final = choice.message.content;
  }
}
assert.equal(calls, turns, 'tool calls before the final answer');
assert.ok(typeof final === 'string' && final.length > 0, 'a final answer');

// the same request, the same answer
const again = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
assert.equal(again.choices[0].message.content, final);

// streaming the final answer: the same text, a usage chunk at the end
const stream = await client.chat.completions.create({
  model: 'gpt-4o-mini', messages, tools, stream: true, stream_options: { include_usage: true },
});
let text = '';
let usage = null;
for await (const chunk of stream) {
  assert.equal(chunk.object, 'chat.completion.chunk');
  if (chunk.usage) usage = chunk.usage;
  text += chunk.choices[0]?.delta?.content ?? '';
}
assert.equal(text, final, 'streamed text equals the answer');
assert.ok(usage && usage.total_tokens > 0, 'usage chunk');

// streaming a tool call: arguments arrive in pieces and parse whole
const tstream = await client.chat.completions.create({
  model: 'gpt-4o-mini', messages: messages.slice(0, 1), tools, stream: true,
});
let name = '';
let argsText = '';
for await (const chunk of tstream) {
  const tc = chunk.choices[0]?.delta?.tool_calls?.[0];
  if (tc?.function?.name) name = tc.function.name;
  if (tc?.function?.arguments) argsText += tc.function.arguments;
}
assert.equal(name, 'get_weather');
assert.ok(JSON.parse(argsText).city, 'streamed tool arguments parse');

// a malformed request is a BadRequestError with the world's message
await assert.rejects(
  client.chat.completions.create({ model: 'gpt-4o-mini', messages: [] }),
  (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && /messages/.test(e.message),
);

// the client's retries get through one 429 (Retry-After), one 503 and one reset
for (const fault of [
  { kind: 'rate_limit', count: 1, retry_after_s: 1, route: '/v1/chat/' },
  { kind: 'server_error', count: 1, route: '/v1/chat/' },
  { kind: 'reset', count: 1, route: '/v1/chat/' },
]) {
  await control('POST', '/_world/faults', fault);
  const r = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
  assert.equal(r.choices[0].message.content, final, `answer after a ${fault.kind}`);
}

// the journal saw each retry as a repeat of the same history
const journal = (await control('GET', '/_world/journal'))
  .trim().split('\n').map((l) => JSON.parse(l));
const faulted = journal.filter((e) => e.fault);
assert.deepEqual(faulted.map((e) => e.fault), ['rate_limit', 'server_error', 'reset']);
for (const e of faulted) {
  const retry = journal.find((x) => x.seq > e.seq && x.hash === e.hash && !x.fault);
  assert.ok(retry && retry.repeat, `retry after ${e.fault} journaled as a repeat`);
}
console.log(`ok: openai ${VERSION} (node ${process.version}): ${journal.length} requests`);
