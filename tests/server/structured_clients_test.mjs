// Structured outputs through stock client libraries, end to end against a
// running `dsv3 serve` (started by test_structured_clients.py; issue 19):
//   openai: chat.completions.parse with zodResponseFormat (-> message.parsed)
//     and with a zodFunction tool forced by tool_choice (-> parsed_arguments),
//     chat.completions.stream with both, responses.parse / responses.create
//     with zodTextFormat or a hand-written json_schema (-> output_parsed,
//     JSON.parse(output_text)), responses.stream (-> output_parsed), a forced
//     zodResponsesFunction call;
//   the Vercel AI SDK's default provider (the Responses API): generateObject,
//     streamObject, generateText with Output.object, a forced toolChoice, and
//     streamText returning text (and its chat provider's generateObject);
//   LangChain's ChatOpenAI: withStructuredOutput (default, "jsonSchema",
//     "functionCalling": a forced tool_choice), bindTools with tool_choice
//     NAME and "any", and the same through its Responses API mode.
// Each must hand back a parsed object that the zod schema accepts, and the
// document the server wrote must satisfy, by ajv, the JSON Schema the library
// put on the wire (logged from the request it sent). The model's weights are
// random, so values are gibberish; the grammar makes the structure, and the
// schema is bounded (short strings, at most 3 items, no free numbers) so a
// document ends well inside max tokens. Greedy decoding keeps runs repeatable
// (the AI SDK's Responses provider sends no seed).
//
// Known gaps (printed, not failing unless DSV3_STRICT_CLIENT_GAPS=1), each
// shown with the request the library sent and the server's answer:
//   - z.number().int(): zod 4 emits minimum/maximum (+-(2^53 - 1)), which
//     strict mode refuses (400: keyword 'minimum' is not supported);
//   - z.string().max(2) with the model pushed (logit_bias) to bytes F4 BF BF
//     BF: the grammar takes any lead byte + continuation bytes as one
//     character, but F4 BF.. (above U+10FFFF), like overlong E0 80.. / F0
//     80.. and surrogates ED A0.., is not UTF-8; the text comes back with
//     each byte as U+FFFD, 8 characters where the schema allows 2, and zod
//     refuses it (sampled documents hit this about 1 time in 15);
//   - LangChain's Responses mode drops a string tool_choice ("any" ->
//     "required" is formatted, then not sent), so nothing forces the call:
//     a client-side bug; the server sees tool_choice absent ("auto").
// Usage: node structured_clients_test.mjs BASE_URL [MODEL_DIR]
// (MODEL_DIR: for byte tokens' ids in its tokenizer.json), with the clients
// resolved from DSV3_NODE_DIR (default tests/node).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.DSV3_NODE_DIR || path.join(here, '..', 'node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const { OpenAI } = require('openai');
const { zodResponseFormat, zodTextFormat, zodFunction, zodResponsesFunction } = require('openai/helpers/zod');
const { z } = require('zod');
const Ajv = require('ajv').default;
const ai = require('ai');
const { createOpenAI } = require('@ai-sdk/openai');
const { ChatOpenAI } = require('@langchain/openai');
const { tool: lcTool } = require('@langchain/core/tools');

const [baseURL, modelDir] = process.argv.slice(2);

// Every request any client sends goes through this fetch: its body, status
// and (when refused) the server's answer are kept for the checks and for
// reporting what a library sent.
const sent = [];
async function loggingFetch(url, init) {
  const res = await fetch(url, init);
  const entry = { url: String(url), body: typeof init?.body === 'string' ? init.body : null, status: res.status };
  if (res.status >= 400) entry.answer = await res.clone().text();
  sent.push(entry);
  return res;
}
const lastBody = (suffix) => JSON.parse(sent.findLast((r) => r.url.endsWith(suffix)).body);

const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, fetch: loggingFetch });
const model = (await client.models.list()).data[0].id;

const Pet = z.object({
  name: z.string().max(8),
  indoor: z.boolean(),
  kind: z.enum(['cat', 'dog', 'fish']),
  tags: z.array(z.string().max(6)).max(3),
  owner: z.object({ nick: z.string().max(6) }).nullable(),
});
const PROMPT = 'Describe a pet.';
const MAX = 300;

// The JSON Schema a request carried (response_format, text.format or a tool).
function wireSchema(body) {
  const s = body.response_format?.json_schema?.schema ?? body.text?.format?.schema ??
            body.tools?.[0]?.function?.parameters ?? body.tools?.[0]?.parameters;
  assert.ok(s, `no schema in ${JSON.stringify(body)}`);
  const { $schema, ...rest } = s;  // draft-07 or 2020-12 by library; the keywords used are common to both
  return rest;
}
const ajv = new Ajv({ strict: false, allErrors: true });
// `value` (what the library handed back) is the zod schema's and the document
// the server wrote satisfies the schema the library sent.
function assertPet(value, body, doc = value) {
  assert.ok(value && typeof value === 'object', `not a parsed object: ${JSON.stringify(value)}`);
  assert.deepEqual(Pet.parse(value), value);  // zod strips unknown keys: none there
  const validate = ajv.compile(wireSchema(body));
  assert.ok(validate(doc), `${JSON.stringify(doc)}: ${ajv.errorsText(validate.errors)}`);
}

const results = [], failures = [];
async function check(name, fn, { gap = false } = {}) {
  const from = sent.length;
  try {
    const out = await fn();
    results.push(`${gap ? 'gap now passes (make it a check)' : 'ok'}: ${name} ${JSON.stringify(out)}`);
  } catch (e) {
    const requests = sent.slice(from).map((r) => `    ${r.status} ${r.url}\n      sent: ${r.body}` +
                                                    (r.answer ? `\n      answer: ${r.answer}` : ''));
    const report = `${gap ? 'KNOWN GAP' : 'FAILED'}: ${name}: ${String(e?.stack ?? e).split('\n').slice(0, 8).join('\n')}\n` +
                   requests.join('\n');
    if (gap && process.env.DSV3_STRICT_CLIENT_GAPS !== '1') results.push(report);
    else failures.push(report);
  }
}

// --- openai --------------------------------------------------------------
const chatBody = { model, messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX, temperature: 0 };
const addPet = zodFunction({ name: 'add_pet', description: 'Adds a pet', parameters: Pet });

await check('openai chat.completions.parse + zodResponseFormat', async () => {
  const r = await client.chat.completions.parse({ ...chatBody, response_format: zodResponseFormat(Pet, 'pet') });
  const m = r.choices[0].message;
  assert.equal(r.choices[0].finish_reason, 'stop');
  assertPet(m.parsed, lastBody('/chat/completions'), JSON.parse(m.content));
  return m.parsed;
});

await check('openai chat.completions.stream + zodResponseFormat', async () => {
  const r = await client.chat.completions.stream({ ...chatBody, response_format: zodResponseFormat(Pet, 'pet') })
    .finalChatCompletion();
  assertPet(r.choices[0].message.parsed, lastBody('/chat/completions'));
  return r.choices[0].message.parsed;
});

for (const choice of [{ type: 'function', function: { name: 'add_pet' } }, 'required']) {
  await check(`openai chat.completions.parse + zodFunction, tool_choice ${JSON.stringify(choice)}`, async () => {
    const tools = [addPet, zodFunction({ name: 'get_time', parameters: z.object({}) })];
    const r = await client.chat.completions.parse({ ...chatBody, tools: choice === 'required' ? [addPet] : tools,
                                                    tool_choice: choice });
    const m = r.choices[0].message;
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.tool_calls.length, 1);
    assert.equal(m.tool_calls[0].function.name, 'add_pet');
    assertPet(m.tool_calls[0].function.parsed_arguments, lastBody('/chat/completions'));
    return m.tool_calls[0].function.parsed_arguments;
  });
}

await check('openai chat.completions.stream + forced zodFunction', async () => {
  const r = await client.chat.completions.stream({ ...chatBody, tools: [addPet],
                                                   tool_choice: { type: 'function', function: { name: 'add_pet' } } })
    .finalChatCompletion();
  const call = r.choices[0].message.tool_calls[0].function;
  assertPet(call.parsed_arguments, lastBody('/chat/completions'));
  return call.parsed_arguments;
});

const respBody = { model, input: PROMPT, max_output_tokens: MAX, temperature: 0 };
await check('openai responses.parse + zodTextFormat', async () => {
  const r = await client.responses.parse({ ...respBody, text: { format: zodTextFormat(Pet, 'pet') } });
  assert.equal(r.status, 'completed');
  assertPet(r.output_parsed, lastBody('/responses'), JSON.parse(r.output_text));
  return r.output_parsed;
});

await check('openai responses.create + zodTextFormat, JSON.parse(output_text)', async () => {
  const r = await client.responses.create({ ...respBody, text: { format: zodTextFormat(Pet, 'pet') } });
  const doc = JSON.parse(r.output_text);
  assertPet(doc, lastBody('/responses'));
  return doc;
});

await check('openai responses.create + hand-written json_schema', async () => {
  const schema = { type: 'object', properties: { id: { type: 'string', maxLength: 5 },
                                                 ok: { type: 'boolean' },
                                                 kind: { enum: ['a', 'b'] },
                                                 list: { type: 'array', items: { type: 'boolean' }, maxItems: 3 } },
                   required: ['id', 'ok', 'kind', 'list'], additionalProperties: false };
  const r = await client.responses.create({ ...respBody, text: { format: { type: 'json_schema', name: 'thing', strict: true,
                                                                          schema } } });
  const doc = JSON.parse(r.output_text);
  const validate = ajv.compile(schema);
  assert.ok(validate(doc), ajv.errorsText(validate.errors));
  assert.deepEqual(Object.keys(doc), ['id', 'ok', 'kind', 'list']);  // in the schema's order
  return doc;
});

await check('openai responses.stream + zodTextFormat', async () => {
  const stream = client.responses.stream({ ...respBody, text: { format: zodTextFormat(Pet, 'pet') } });
  let deltas = '';
  stream.on('response.output_text.delta', (e) => { deltas += e.delta; });
  const r = await stream.finalResponse();
  assert.equal(deltas, r.output_text);
  assertPet(r.output_parsed, lastBody('/responses'), JSON.parse(deltas));
  return r.output_parsed;
});

await check('openai responses.parse + forced zodResponsesFunction', async () => {
  const r = await client.responses.parse({ ...respBody, tools: [zodResponsesFunction({ name: 'add_pet', parameters: Pet })],
                                           tool_choice: { type: 'function', name: 'add_pet' } });
  const calls = r.output.filter((i) => i.type === 'function_call');
  assert.equal(calls.length, 1, JSON.stringify(r.output));
  assert.equal(calls[0].name, 'add_pet');
  assertPet(calls[0].parsed_arguments, lastBody('/responses'));
  return calls[0].parsed_arguments;
});

// --- the Vercel AI SDK -----------------------------------------------------
const provider = createOpenAI({ baseURL, apiKey: 'unused', fetch: loggingFetch });
const sdkArgs = { model: provider(model), prompt: PROMPT, maxOutputTokens: MAX, temperature: 0, maxRetries: 0 };

await check('ai generateObject (default provider: /v1/responses)', async () => {
  const r = await ai.generateObject({ ...sdkArgs, schema: Pet });
  assert.ok(sent.at(-1).url.endsWith('/responses'));
  assertPet(r.object, lastBody('/responses'));
  return r.object;
});

await check('ai streamObject', async () => {
  const r = ai.streamObject({ ...sdkArgs, schema: Pet, onError: ({ error }) => { throw error; } });
  let partials = 0;
  for await (const _ of r.partialObjectStream) partials++;
  const object = await r.object;
  assert.ok(partials > 1, `${partials} partial objects`);
  assertPet(object, lastBody('/responses'));
  return object;
});

await check('ai generateText + Output.object', async () => {
  const r = await ai.generateText({ ...sdkArgs, output: ai.Output.object({ schema: Pet }) });
  assertPet(r.output, lastBody('/responses'));
  return r.output;
});

await check('ai generateText + forced toolChoice', async () => {
  const r = await ai.generateText({ ...sdkArgs, tools: { add_pet: ai.tool({ description: 'Adds a pet', inputSchema: Pet }) },
                                    toolChoice: { type: 'tool', toolName: 'add_pet' } });
  assert.equal(r.toolCalls.length, 1);
  assert.equal(r.toolCalls[0].toolName, 'add_pet');
  assertPet(r.toolCalls[0].input, lastBody('/responses'));
  return r.toolCalls[0].input;
});

await check('ai streamText (default provider) returns text', async () => {
  const args = { ...sdkArgs, maxOutputTokens: 12 };
  const st = ai.streamText({ ...args, onError: ({ error }) => { throw error; } });
  let text = '';
  for await (const t of st.textStream) text += t;
  const whole = await client.responses.create({ ...respBody, max_output_tokens: 12 });
  assert.ok(text.length > 0);
  assert.equal(text, whole.output_text);
  return text;
});

await check('ai generateObject (chat provider: /v1/chat/completions)', async () => {
  const r = await ai.generateObject({ ...sdkArgs, model: provider.chat(model), schema: Pet });
  assertPet(r.object, lastBody('/chat/completions'));
  return r.object;
});

// --- LangChain -------------------------------------------------------------
for (const useResponsesApi of [false, true]) {
  const lc = new ChatOpenAI({ model, apiKey: 'unused', configuration: { baseURL, fetch: loggingFetch },
                              maxTokens: MAX, temperature: 0, maxRetries: 0, useResponsesApi });
  const api = useResponsesApi ? 'responses' : 'chat';
  const endpoint = useResponsesApi ? '/responses' : '/chat/completions';
  const methods = useResponsesApi ? [undefined, 'jsonSchema'] : [undefined, 'jsonSchema', 'functionCalling'];
  for (const method of methods) {
    await check(`langchain (${api}) withStructuredOutput, method ${method ?? 'default'}`, async () => {
      const out = await lc.withStructuredOutput(Pet, method ? { method } : {}).invoke(PROMPT);
      assertPet(out, lastBody(endpoint));
      return out;
    });
  }
  const addPetTool = lcTool(async () => 'added', { name: 'add_pet', description: 'Adds a pet', schema: Pet });
  const getTime = lcTool(async () => 'noon', { name: 'get_time', description: 'Now', schema: z.object({}) });
  for (const choice of ['add_pet', 'any']) {
    const gap = useResponsesApi && choice === 'any';  // LangChain sends no tool_choice (see the header)
    await check(`langchain (${api}) bindTools, tool_choice ${choice}`, async () => {
      const m = await lc.bindTools(choice === 'any' ? [addPetTool] : [getTime, addPetTool], { tool_choice: choice })
        .invoke(PROMPT);
      assert.equal(m.tool_calls.length, 1, JSON.stringify(m.tool_calls));
      assert.equal(m.tool_calls[0].name, 'add_pet');
      const body = lastBody(endpoint);
      assertPet(m.tool_calls[0].args, { ...body, tools: body.tools.filter((t) => (t.function ?? t).name === 'add_pet') });
      return m.tool_calls[0].args;
    }, { gap });
  }
}

// --- known gaps (see the header) ------------------------------------------
await check('openai chat.completions.parse + zodResponseFormat with z.number().int()', async () => {
  const Counted = z.object({ name: z.string().max(8), legs: z.number().int() });
  const r = await client.chat.completions.parse({ ...chatBody, response_format: zodResponseFormat(Counted, 'pet') });
  return Counted.parse(r.choices[0].message.parsed);
}, { gap: true });

// Byte-level token ids (GPT-2's byte -> character map: 0xF4 is 'ô', 0xBF '¿').
const byteToken = (() => {
  try {
    const vocab = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')).model.vocab;
    return (b) => vocab[String.fromCharCode(b)];
  } catch {
    return () => undefined;
  }
})();
if (byteToken(0xF4) !== undefined && byteToken(0xBF) !== undefined) {
  await check('openai chat.completions.parse + z.string().max(2), bytes F4 BF BF BF favoured', async () => {
    const Short = z.object({ s: z.string().max(2) });
    const r = await client.chat.completions.parse({ ...chatBody, logit_bias: { [byteToken(0xF4)]: 100, [byteToken(0xBF)]: 100 },
                                                    response_format: zodResponseFormat(Short, 'short') });
    const s = r.choices[0].message.parsed.s;
    assert.ok(!s.includes('\ufffd'), `${JSON.stringify(s)}: invalid UTF-8 came back as U+FFFD`);
    return s;
  }, { gap: true });
}

for (const line of results) console.log(line);
for (const f of failures) console.log(f);
console.log(`${results.filter((l) => l.startsWith('ok')).length} checks passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
