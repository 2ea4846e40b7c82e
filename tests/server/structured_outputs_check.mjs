// Structured outputs, checked from outside (issue 19): for each JSON Schema
// in a directory, asks a running `dsv3 serve` for COUNT completions under
// response_format {type: "json_schema", json_schema: {name, schema, strict:
// true}} on /v1/completions (n up to 16 per request, a distinct seed per
// request, temperature 1) and checks with ajv that every output parses, that
// it validates against the schema, and that finish_reason is "stop" (the
// document was complete, not cut by max_tokens). Prints one line per schema
// and exits 1 on any failure (2 on bad usage). Usage:
//   node structured_outputs_check.mjs BASE_URL SCHEMA_DIR [COUNT]
//        [--max-tokens N] [--match REGEX] [--concurrency K] [--prompt TEXT] [--show N]
// BASE_URL is the server's /v1 (http://127.0.0.1:8080/v1); COUNT defaults to
// 200 per schema; --max-tokens to 600; --match (file names) to
// ^nested_\d+\.json$; --concurrency (requests in flight) to 2; --show (failures
// printed per schema) to 5. ajv is resolved from DSV3_NODE_DIR (default tests/node).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeDir = process.env.DSV3_NODE_DIR || path.join(here, '..', 'node');
const require = createRequire(path.join(nodeDir, 'package.json'));
const AjvModule = require('ajv');
const Ajv = AjvModule.default ?? AjvModule;

function usage(why) {
  console.error(`structured_outputs_check: ${why}`);
  console.error('usage: node structured_outputs_check.mjs BASE_URL SCHEMA_DIR [COUNT] [--max-tokens N] ' +
                '[--match REGEX] [--concurrency K] [--prompt TEXT] [--show N]');
  process.exit(2);
}

const opts = { maxTokens: 600, match: /^nested_\d+\.json$/, concurrency: 2, prompt: 'A JSON document:\n', show: 5 };
const positional = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; ++i) {
  const a = argv[i];
  const value = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
  if (a === '--max-tokens') opts.maxTokens = Number(value());
  else if (a === '--match') opts.match = new RegExp(value());
  else if (a === '--concurrency') opts.concurrency = Number(value());
  else if (a === '--prompt') opts.prompt = value();
  else if (a === '--show') opts.show = Number(value());
  else if (a.startsWith('--')) usage(`unknown option ${a}`);
  else positional.push(a);
}
if (positional.length < 2 || positional.length > 3) usage('expected BASE_URL SCHEMA_DIR [COUNT]');
const [baseUrl, schemaDir] = positional;
const count = positional.length === 3 ? Number(positional[2]) : 200;
for (const [name, v] of [['COUNT', count], ['--max-tokens', opts.maxTokens], ['--concurrency', opts.concurrency], ['--show', opts.show + 1]])
  if (!Number.isInteger(v) || v < 1) usage(`${name} must be a positive integer`);

const MAX_N = 16;  // the server's default max_choices

async function post(route, body) {
  const r = await fetch(baseUrl.replace(/\/$/, '') + route, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(600_000),
  });
  const text = await r.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: r.status, body: parsed };
}

async function modelId() {
  const r = await fetch(baseUrl.replace(/\/$/, '') + '/models', { signal: AbortSignal.timeout(60_000) });
  if (r.status !== 200) throw new Error(`GET /models: HTTP ${r.status}`);
  return (await r.json()).data[0].id;
}

// Runs `jobs` (functions returning promises) with at most `k` in flight.
async function pool(jobs, k) {
  const results = new Array(jobs.length);
  let next = 0;
  async function worker() {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  }
  await Promise.all(Array.from({ length: Math.min(k, jobs.length) }, worker));
  return results;
}

function short(s, n = 300) {
  s = typeof s === 'string' ? s : JSON.stringify(s);
  return s.length > n ? s.slice(0, n) + `... (${s.length} chars)` : s;
}

async function checkSchema(model, file, index) {
  const name = path.basename(file, '.json');
  const schema = JSON.parse(fs.readFileSync(file, 'utf8'));
  const ajv = new Ajv({ allErrors: true, strict: false });
  const validate = ajv.compile(schema);
  const stats = { name, outputs: 0, valid: 0, stop: 0, tokens: 0, failures: [], seconds: 0 };
  const jobs = [];
  for (let done = 0, r = 0; done < count; ++r) {
    const n = Math.min(MAX_N, count - done);
    done += n;
    const seed = 1000 * (index + 1) + r;  // distinct per request; choices get ChoiceSeed(seed, i)
    jobs.push(async () => {
      const body = {
        model, prompt: opts.prompt, max_tokens: opts.maxTokens, n, seed, temperature: 1,
        response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
      };
      return { seed, n, ...(await post('/completions', body)) };
    });
  }
  const t0 = process.hrtime.bigint();
  const answers = await pool(jobs, opts.concurrency);
  stats.seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const fail = (why) => stats.failures.push(why);
  for (const a of answers) {
    if (a.status !== 200) {
      fail(`seed ${a.seed}: HTTP ${a.status}: ${short(a.body)}`);
      continue;
    }
    const choices = a.body.choices ?? [];
    if (choices.length !== a.n) fail(`seed ${a.seed}: ${choices.length} choices, asked for ${a.n}`);
    stats.tokens += a.body.usage?.completion_tokens ?? 0;
    for (const c of choices) {
      stats.outputs += 1;
      const where = `seed ${a.seed} choice ${c.index}`;
      if (c.finish_reason === 'stop') stats.stop += 1;
      else fail(`${where}: finish_reason ${c.finish_reason}: ${short(c.text)}`);
      let doc;
      try {
        doc = JSON.parse(c.text);
      } catch (e) {
        fail(`${where}: not JSON (${e.message}): ${short(c.text)}`);
        continue;
      }
      if (validate(doc)) stats.valid += 1;
      else {
        // U+FFFD in the text: the model produced bytes that are not valid UTF-8
        // and detokenizing replaced them, so the text is not what was constrained.
        const note = c.text.includes('\uFFFD') ? ' (has U+FFFD: generated bytes were not valid UTF-8)' : '';
        fail(`${where}: invalid${note}: ${ajv.errorsText(validate.errors)}: ${short(c.text)}`);
      }
    }
  }
  if (stats.outputs < count) fail(`${count - stats.outputs} of ${count} outputs missing`);
  return stats;
}

const files = fs.readdirSync(schemaDir).filter((f) => opts.match.test(f)).sort().map((f) => path.join(schemaDir, f));
if (files.length === 0) usage(`no schema in ${schemaDir} matches ${opts.match}`);
const model = await modelId();
console.log(`structured outputs: ${baseUrl} (${model}), ${files.length} schemas x ${count} outputs, ` +
            `max_tokens ${opts.maxTokens}`);
let failed = 0;
for (const [i, file] of files.entries()) {
  const s = await checkSchema(model, file, i);
  const mean = s.outputs ? (s.tokens / s.outputs).toFixed(1) : '-';
  console.log(`${s.name}: ${s.valid}/${count} valid, ${s.stop}/${count} finish_reason stop, ` +
              `mean ${mean} tokens, ${s.seconds.toFixed(1)} s${s.failures.length ? ' FAILED' : ''}`);
  for (const f of s.failures.slice(0, opts.show)) console.log(`  ${f}`);
  if (s.failures.length > opts.show) console.log(`  ... ${s.failures.length - opts.show} more`);
  if (s.failures.length) failed += 1;
}
console.log(failed ? `structured outputs: ${failed} of ${files.length} schemas FAILED` :
                     `structured outputs: all ${files.length} schemas passed`);
process.exit(failed ? 1 : 0);
