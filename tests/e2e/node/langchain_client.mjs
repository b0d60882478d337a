// Drives the world with LangChain's OpenAI chat model (@langchain/openai
// ChatOpenAI), unchanged but for its base URL: a tool-using agent loop with
// bindTools() and a zod-typed tool, usage metadata, streaming, and its retry
// through an injected 429. Run by test_world_openai.sh as
//   node langchain_client.mjs BASE_URL TURNS
// Exits non-zero with a message on the first failed check.
import assert from 'node:assert/strict';
import { ChatOpenAI } from '@langchain/openai';
import { HumanMessage } from '@langchain/core/messages';
import { tool } from '@langchain/core/tools';
import { z } from 'zod';

const [baseURL, turnsArg] = process.argv.slice(2);
const turns = Number(turnsArg);
const root = baseURL.replace(/\/v1$/, '');

const weather = tool(async ({ city }) => `3 degrees in ${city}`, {
  name: 'get_weather',
  description: 'weather for a city',
  schema: z.object({ city: z.enum(['Oslo', 'Lima']), days: z.number().int() }),
});
const model = new ChatOpenAI({
  model: 'gpt-4o-mini',
  apiKey: 'not-a-real-key',
  configuration: { baseURL },
  maxRetries: 2,
  timeout: 20000,
}).bindTools([weather]);

// the agent loop: `turns` tool calls, run by the tool itself, then an answer
const messages = [new HumanMessage('What is the weather in Oslo?')];
let calls = 0;
let final = null;
for (let i = 0; i < 20 && final === null; i++) {
  const ai = await model.invoke(messages);
  messages.push(ai);
  assert.ok(ai.usage_metadata?.total_tokens > 0, 'usage metadata');
  if (ai.tool_calls?.length) {
    for (const tc of ai.tool_calls) {
      assert.equal(tc.name, 'get_weather');
      assert.ok(['Oslo', 'Lima'].includes(tc.args.city));
      messages.push(await weather.invoke(tc)); // a ToolMessage
      calls++;
    }
  } else {
    final = ai.content;
  }
}
assert.equal(calls, turns, 'tool calls before the final answer');
assert.ok(typeof final === 'string' && final.startsWith('After '), `final answer: ${final}`);

// streaming the same conversation gives the same text
const history = messages.slice(0, -1);
let text = '';
for await (const chunk of await model.stream(history)) text += chunk.content;
assert.equal(text, final, 'streamed text equals the answer');

// one 429 with Retry-After: LangChain's client retries and gets the answer
const res = await fetch(root + '/_world/faults', {
  method: 'POST',
  body: JSON.stringify({ kind: 'rate_limit', count: 1, retry_after_s: 1 }),
});
assert.equal(res.status, 200, await res.text());
const again = await model.invoke(history);
assert.equal(again.content, final, 'answer after a 429');
console.log(`ok: langchain ChatOpenAI: ${calls} tool calls, then an answer`);
