// Stock clients of the Responses API against a running `dsv3 serve` with a
// chat format (started by test_openai_responses.py): the official `openai`
// npm client's responses.create (whole and streamed) and responses.stream
// helper, a function-tool round trip, refusals as the client's typed errors;
// then, when it is installed, the Vercel AI SDK's default OpenAI provider
// (which calls /v1/responses): generateText, streamText and a tool round trip
// through its message history. Usage:
//   node openai_responses_test.mjs BASE_URL
// with the clients resolved from DSV3_NODE_DIR (default tests/node).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.DSV3_NODE_DIR || path.join(here, '..', 'node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const OpenAI = require('openai').OpenAI;
const [baseURL] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
const model = (await client.models.list()).data[0].id;

// The tiny test tokenizer spends about a token per character: prompts stay short.
const body = { model, input: 'Hi there', instructions: 'Be brief.', max_output_tokens: 8, temperature: 0 };
const chatTurn = { model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi there' }],
                   max_tokens: 8, temperature: 0 };
const tools = [{ type: 'function', name: 'get_weather', description: 'Now', parameters: { type: 'object' }, strict: false }];
// Output items without their ids, and without the `parsed` the stream helper adds to text parts.
const withoutIds = (items) => items.map(({ id, ...rest }) => (
  rest.content ? { ...rest, content: rest.content.map(({ parsed, ...part }) => part) } : rest));

// responses.create: the same turn as chat, in the Response shape.
async function create() {
  const r = await client.responses.create({ ...body, metadata: { run: '1' } });
  const chat = await client.chat.completions.create(chatTurn);
  assert.equal(r.object, 'response');
  assert.ok(r.id.startsWith('resp_'), r.id);
  assert.equal(r.output_text, chat.choices[0].message.content ?? '');
  assert.equal(r.status, chat.choices[0].finish_reason === 'length' ? 'incomplete' : 'completed');
  assert.equal(r.usage.input_tokens, chat.usage.prompt_tokens);
  assert.equal(r.usage.output_tokens, chat.usage.completion_tokens);
  assert.deepEqual(r.metadata, { run: '1' });
  assert.equal(r.output[0].type, 'message');
  return r;
}

// Streamed: raw events from create({stream: true}), then the stream helper.
async function stream(whole) {
  const events = [];
  for await (const e of await client.responses.create({ ...body, stream: true })) events.push(e);
  assert.deepEqual(events.map((e) => e.sequence_number), [...events.keys()]);
  assert.equal(events[0].type, 'response.created');
  assert.equal(events.at(-1).type, `response.${whole.status}`);
  const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
  assert.equal(deltas.join(''), whole.output_text);

  const helper = client.responses.stream(body);
  let snapshot = '';
  helper.on('response.output_text.delta', (e) => { snapshot = e.snapshot; });
  const final = await helper.finalResponse();
  assert.equal(snapshot, whole.output_text);
  assert.equal(final.output_text, whole.output_text);
  assert.deepEqual(withoutIds(final.output), withoutIds(whole.output));
  assert.deepEqual(final.usage.output_tokens, whole.usage.output_tokens);
  return deltas.length;
}

// A function-tool round trip: tools in, then the history a client sends back
// after a call (the tiny model never calls one itself) == chat's equivalent.
async function toolRoundTrip() {
  const first = await client.responses.create({ model, input: 'Hi', tools, max_output_tokens: 2, temperature: 0 });
  assert.equal(first.tools[0].name, 'get_weather');
  const input = [{ role: 'user', content: 'Hi' },
                 { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{}' },
                 { type: 'function_call_output', call_id: 'call_1', output: '22C' }];
  const second = await client.responses.create({ model, input, tools, max_output_tokens: 2, temperature: 0 });
  const chat = await client.chat.completions.create({
    model, max_tokens: 2, temperature: 0,
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'Now', parameters: { type: 'object' } } }],
    messages: [{ role: 'user', content: 'Hi' },
               { role: 'assistant', content: null, tool_calls: [
                 { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
               { role: 'tool', tool_call_id: 'call_1', content: '22C' }] });
  assert.equal(second.usage.input_tokens, chat.usage.prompt_tokens);
  assert.equal(second.output_text, chat.choices[0].message.content ?? '');
  const streamed = await client.responses.stream({ model, input, tools, max_output_tokens: 2, temperature: 0 })
    .finalResponse();
  assert.equal(streamed.output_text, second.output_text);
  return second.usage.input_tokens;
}

async function refusals() {
  const cases = [[{ previous_response_id: 'resp_1' }, 'previous_response_id'],
                 [{ text: { format: { type: 'json_schema', name: 'o', strict: true, schema: {
                   type: 'object', properties: { a: { type: 'string', pattern: '^x' } }, required: ['a'],
                   additionalProperties: false } } } }, 'text.format'],  // strict: a keyword dsv3 cannot enforce
                 [{ tool_choice: { type: 'function', name: 'nope' }, tools }, 'tool_choice'],
                 [{ input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] },
                  'input[0].content[0].type']];
  for (const [fields, param] of cases) {
    await assert.rejects(client.responses.create({ ...body, ...fields }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.param, param);
      return true;
    });
  }
  await assert.rejects(client.responses.retrieve('resp_1'), (e) => e instanceof OpenAI.NotFoundError);
}

// The Vercel AI SDK, when tests/node has it: `openai(model)` is its
// Responses API provider. Returns null when it is not installed.
async function vercel(whole) {
  let ai, provider;
  try {
    ai = require('ai');
    provider = require('@ai-sdk/openai').createOpenAI({ baseURL, apiKey: 'unused' });
  } catch {
    return null;
  }
  const lm = provider(model);
  const args = { model: lm, system: 'Be brief.', prompt: 'Hi there', maxOutputTokens: 8, temperature: 0, maxRetries: 0 };
  const gen = await ai.generateText(args);
  assert.equal(gen.text, whole.output_text);
  assert.equal(gen.usage.inputTokens, whole.usage.input_tokens);
  assert.equal(gen.finishReason, whole.status === 'incomplete' ? 'length' : 'stop');
  const st = ai.streamText({ ...args, onError: ({ error }) => { throw error; } });
  let text = '';
  for await (const t of st.textStream) text += t;
  assert.equal(text, whole.output_text);
  assert.equal((await st.usage).outputTokens, whole.usage.output_tokens);
  // A tool round trip through the SDK's own history format.
  const messages = [{ role: 'user', content: 'Hi' },
                    { role: 'assistant', content: [{ type: 'tool-call', toolCallId: 'call_1', toolName: 'get_weather',
                                                     input: {} }] },
                    { role: 'tool', content: [{ type: 'tool-result', toolCallId: 'call_1', toolName: 'get_weather',
                                                output: { type: 'text', value: '22C' } }] }];
  const weather = ai.tool({ description: 'Now', inputSchema: ai.jsonSchema({ type: 'object' }) });
  const round = await ai.generateText({ model: lm, messages, tools: { get_weather: weather }, maxOutputTokens: 2,
                                        temperature: 0, maxRetries: 0 });
  assert.ok(round.usage.inputTokens > 0);
  return { text: gen.text, streamed: text, tool_round_trip_input_tokens: round.usage.inputTokens };
}

const whole = await create();
const deltas = await stream(whole);
const roundTrip = await toolRoundTrip();
await refusals();
const v = await vercel(whole);
console.log('openai client: responses.create', JSON.stringify(whole.output_text), whole.status, `${deltas} deltas`);
console.log('openai client: tool round trip input_tokens', roundTrip);
console.log(v ? `vercel ai sdk: ${JSON.stringify(v)}` : 'vercel ai sdk: not installed in tests/node, skipped');
console.log('responses clients: all checks passed');
