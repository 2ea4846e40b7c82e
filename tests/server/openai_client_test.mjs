// The official `openai` npm client against a running `dsv3 serve` (started by
// test_openai_client.py): n > 1 choices streamed and not, on completions and
// chat (with the client's own stream helper assembling choices by index),
// penalties and logit_bias passed through, and bad values surfacing as the
// client's BadRequestError naming the parameter. Usage:
//   node openai_client_test.mjs COMPLETIONS_BASE_URL CHAT_BASE_URL
// with the client resolved from DSV3_NODE_DIR (default tests/node).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.DSV3_NODE_DIR || path.join(here, '..', 'node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const OpenAI = require('openai').OpenAI;
const [completionsUrl, chatUrl] = process.argv.slice(2);
const ids = new OpenAI({ baseURL: completionsUrl, apiKey: 'unused', maxRetries: 0 });
const chat = new OpenAI({ baseURL: chatUrl, apiKey: 'unused', maxRetries: 0 });
// The served names, as a client would find them.
const idsModel = (await ids.models.list()).data[0].id;
const chatModel = (await chat.models.list()).data[0].id;

// Completions, n = 3, streamed and not: the same seed gives the same choices.
async function completions() {
  const body = { model: idsModel, prompt: [5, 6, 7, 8], max_tokens: 10, n: 3, temperature: 1, seed: 21, ignore_eos: true,
                 presence_penalty: 0.5, frequency_penalty: 0.25, logit_bias: { '9': -100 } };
  const full = await ids.completions.create(body);
  assert.deepEqual(full.choices.map((c) => c.index), [0, 1, 2]);
  assert.equal(full.usage.prompt_tokens, 4);
  assert.equal(full.usage.completion_tokens, 30);
  const texts = ['', '', ''], finish = [[], [], []];
  let usage = null;
  const stream = await ids.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      texts[c.index] += c.text;
      if (c.finish_reason) finish[c.index].push(c.finish_reason);
    }
  }
  assert.deepEqual(texts, full.choices.map((c) => c.text));
  assert.deepEqual(finish, [['length'], ['length'], ['length']]);
  assert.equal(usage.completion_tokens, 30);
  for (const t of texts) assert.ok(!t.split(' ').includes('9'), 'a banned token was sampled');
  return texts;
}

// Chat, n = 2: create() streamed and not, and the client's stream helper.
async function chatChoices() {
  const body = { model: chatModel, messages: [{ role: 'user', content: 'Tell me a story' }], max_tokens: 12, n: 2,
                 temperature: 1, seed: 8, repetition_penalty: 1.2 };
  const full = await chat.chat.completions.create(body);
  assert.deepEqual(full.choices.map((c) => c.index), [0, 1]);
  const content = ['', ''];
  for await (const chunk of await chat.chat.completions.create({ ...body, stream: true })) {
    for (const c of chunk.choices) content[c.index] += c.delta.content ?? '';
  }
  assert.deepEqual(content, full.choices.map((c) => c.message.content ?? ''));
  const assembled = await chat.chat.completions.stream(body).finalChatCompletion();
  assert.deepEqual(assembled.choices.map((c) => [c.index, c.message.content ?? '', c.finish_reason]),
                   full.choices.map((c) => [c.index, c.message.content ?? '', c.finish_reason]));
  return content;
}

async function badValues() {
  const cases = [[{ n: 17 }, 'n'], [{ presence_penalty: 3 }, 'presence_penalty'],
                 [{ logit_bias: { 'abc': 1 } }, 'logit_bias'], [{ logit_bias: { '384': -100 } }, 'logit_bias']];
  for (const [fields, param] of cases) {
    await assert.rejects(ids.completions.create({ model: idsModel, prompt: [1, 2], max_tokens: 2, ...fields }), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.status, 400);
      assert.equal(e.param, param);
      return true;
    });
  }
}

const texts = await completions();
const content = await chatChoices();
await badValues();
console.log('openai client: completions n=3', JSON.stringify(texts));
console.log('openai client: chat n=2', JSON.stringify(content));
console.log('openai client: all checks passed');
