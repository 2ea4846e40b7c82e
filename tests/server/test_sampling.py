"""End-to-end tests of the sampling fields stock OpenAI clients send (issue
21) on a real `dsv3 serve`: logit_bias (a banned token never appears in 1,000
sampled tokens; a +100 bias takes over), presence / frequency penalties with
OpenAI's semantics checked token by token against the raw logprobs,
repetition_penalty, n > 1 choices (one seed gives the same n outputs on every
run, choice i does not depend on n, streamed == non-streamed with one choice
and its `index` per chunk, the prompt prefilled once as /metrics shows,
usage counted as OpenAI does, n above the slots, every choice cancelled when
the client leaves), the chat endpoint with n choices, and bad values answered
400 naming the parameter."""
import collections
import json
import os
import unittest

from harness import GOLDEN, Server, ServerTest, chat_model, chat_parts, raw_socket

MODEL = os.path.join(GOLDEN, "v3_tiny_bf16")
VOCAB = 384


def ids(text):
    return list(map(int, text.split()))


class Sampling(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(MODEL, "-q", "--parallel", "4", "--prefill-chunk", "8")

    def complete(self, **body):
        status, out, _ = self.s.post("/v1/completions", body)
        self.assertEqual(status, 200, out)
        return out

    def texts(self, **body):
        return [c["text"] for c in self.complete(**body)["choices"]]

    def stream(self, **body):
        status, events, _ = self.s.stream("/v1/completions", {**body, "stream": True})
        self.assertEqual(status, 200, events)
        self.assertEqual(events[-1], "[DONE]")
        return events[:-1]

    def test_banned_token_never_sampled_in_1000_tokens(self):
        # Five choices of 200 tokens: 1,000 sampled tokens in one request.
        body = dict(prompt=[11, 12, 13], max_tokens=200, n=5, temperature=1.0, seed=2024, ignore_eos=True)
        free = [t for text in self.texts(**body) for t in ids(text)]
        self.assertEqual(len(free), 1000)
        banned, count = collections.Counter(free).most_common(1)[0]
        self.assertGreater(count, 5)  # the ban has something to do
        out = [t for text in self.texts(**body, logit_bias={str(banned): -100}) for t in ids(text)]
        self.assertEqual(len(out), 1000)
        self.assertNotIn(banned, out)
        # Streamed too, with the three most frequent tokens banned at once.
        top3 = [t for t, _ in collections.Counter(free).most_common(3)]
        events = self.stream(**body, logit_bias={str(t): -100 for t in top3})
        streamed = [t for e in events for c in e["choices"] for t in ids(c["text"])]
        self.assertEqual(len(streamed), 1000)
        self.assertFalse(set(top3) & set(streamed))

    def test_positive_bias_takes_over_and_logprobs_stay_raw(self):
        out = self.complete(prompt=[4, 5], max_tokens=50, temperature=1.0, seed=3, ignore_eos=True,
                            logit_bias={"42": 100}, logprobs=1)
        choice = out["choices"][0]
        self.assertEqual(ids(choice["text"]), [42] * 50)
        # The logprobs are the model's own (softmax of the raw logits), as in
        # vLLM: a token the tiny model gives ~1/384 is not reported as certain.
        self.assertLess(max(choice["logprobs"]["token_logprobs"]), -1.0)

    def check_openai_penalties(self, choice, presence, frequency, bias=None):
        """Greedy with penalties: every chosen token has the highest adjusted
        score raw logprob + bias - count * frequency - (count > 0) * presence
        among the 20 alternatives reported (logprobs are raw)."""
        lp = choice["logprobs"]
        counts = collections.Counter()
        def score(t, raw):
            c = counts[int(t)]
            return raw + (bias or {}).get(int(t), 0) - c * frequency - (presence if c else 0)
        for tok, raw_logprob, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
            chosen = score(tok, raw_logprob)
            for alt, raw in top.items():
                self.assertGreaterEqual(chosen, score(alt, raw) - 1e-4, (tok, alt, dict(counts)))
            counts[int(tok)] += 1

    def test_presence_and_frequency_penalties_follow_openai(self):
        body = dict(prompt=[7, 7, 7, 8], max_tokens=60, temperature=0, ignore_eos=True, logprobs=20)
        plain = self.complete(**body)["choices"][0]
        plain_ids = ids(plain["text"])
        self.assertLess(len(set(plain_ids)), len(plain_ids))  # greedy repeats itself
        for presence, frequency in ((0.0, 0.7), (1.5, 0.0), (0.4, 0.3), (-0.5, 0.0)):
            with self.subTest(presence=presence, frequency=frequency):
                choice = self.complete(**body, presence_penalty=presence, frequency_penalty=frequency)["choices"][0]
                self.check_openai_penalties(choice, presence, frequency)
                if presence > 0 or frequency > 0:
                    self.assertNotEqual(ids(choice["text"]), plain_ids)
        # Penalties only count generated tokens: a prompt token is not penalised.
        choice = self.complete(**body, presence_penalty=2.0, logit_bias={"7": 3})["choices"][0]
        self.check_openai_penalties(choice, 2.0, 0.0, bias={7: 3})
        # Strong penalties make greedy output repeat less.
        strong = ids(self.complete(**body, frequency_penalty=2.0, presence_penalty=2.0)["choices"][0]["text"])
        self.assertGreater(len(set(strong)), len(set(plain_ids)))

    def test_repetition_penalty(self):
        body = dict(prompt=[7, 7, 7, 8], max_tokens=60, temperature=0, ignore_eos=True)
        plain = ids(self.complete(**body)["choices"][0]["text"])
        self.assertEqual(ids(self.complete(**body, repetition_penalty=1.0)["choices"][0]["text"]), plain)
        strong = ids(self.complete(**body, repetition_penalty=5.0)["choices"][0]["text"])
        self.assertGreater(len(set(strong)), len(set(plain)))
        # Streamed and sampled, with the other penalties: the same tokens again.
        sampled = dict(body, temperature=0.8, seed=5, repetition_penalty=1.3, presence_penalty=0.5,
                       frequency_penalty=0.5)
        full = self.complete(**sampled)["choices"][0]["text"]
        self.assertEqual("".join(c["text"] for e in self.stream(**sampled) for c in e["choices"]), full)

    def test_n_choices_same_seed_same_outputs_prefilled_once(self):
        # A prompt no other test starts with: nothing cached.
        prompt = [377, 3, 9, 27, 81, 243, 5, 25, 125, 41, 83, 167, 335, 287, 191, 2, 4, 8, 16, 32]
        p, n = len(prompt), 4
        body = dict(prompt=prompt, max_tokens=24, n=n, temperature=1.0, top_p=0.95, seed=77, ignore_eos=True)
        before = self.s.wait_idle()
        first = self.complete(**body)
        after = self.s.wait_idle()
        delta = {k: after[k] - before[k] for k in ("dsv3_prompt_tokens_total", "dsv3_prompt_tokens_cached_total",
                                                   "dsv3_prompt_tokens_computed_total")}
        # Each choice counts the prompt, but only the first reads it: the
        # others copy its rows and compute its last token (for their logits).
        self.assertEqual(delta, {"dsv3_prompt_tokens_total": n * p, "dsv3_prompt_tokens_cached_total": (n - 1) * (p - 1),
                                 "dsv3_prompt_tokens_computed_total": p + n - 1}, delta)
        u = first["usage"]
        self.assertEqual((u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]), (p, n * 24, p + n * 24))
        self.assertEqual(u["prompt_tokens_details"]["cached_tokens"], 0)
        texts = [c["text"] for c in first["choices"]]
        self.assertEqual([c["index"] for c in first["choices"]], list(range(n)))
        self.assertEqual(len(set(texts)), n)  # each choice its own stream
        self.assertEqual(self.texts(**body), texts)  # same seed, same n outputs
        self.assertEqual(self.texts(**{**body, "n": 1}), texts[:1])  # choice 0 keeps the seed
        self.assertEqual(self.texts(**{**body, "n": 2}), texts[:2])  # choice i does not depend on n
        self.assertNotEqual(self.texts(**{**body, "seed": 78}), texts)

    def test_n_choices_streamed_one_choice_per_chunk(self):
        body = dict(prompt=[2, 4, 6, 8], max_tokens=16, n=3, temperature=0.9, seed=99, ignore_eos=True)
        full = self.complete(**body)
        events = self.stream(**body, stream_options={"include_usage": True})
        *chunks, usage = events
        self.assertEqual(usage["choices"], [])
        # The same counts, but the prompt is now cached (all but its last token).
        self.assertEqual(usage["usage"], {**full["usage"], "prompt_tokens_details": {"cached_tokens": 3}})
        text, finish = collections.defaultdict(str), collections.defaultdict(list)
        for e in chunks:
            self.assertEqual(len(e["choices"]), 1)  # one choice per chunk, named by its index
            self.assertIsNone(e["usage"])
            c = e["choices"][0]
            text[c["index"]] += c["text"]
            if c["finish_reason"]:
                finish[c["index"]].append(c["finish_reason"])
        self.assertEqual(sorted(text), [0, 1, 2])
        self.assertEqual([text[i] for i in range(3)], [c["text"] for c in full["choices"]])
        self.assertEqual(dict(finish), {0: ["length"], 1: ["length"], 2: ["length"]})

    def test_more_choices_than_slots(self):
        # Six choices on four slots: the last two wait for a slot and then
        # read the prompt from the cache the first ones left.
        body = dict(prompt=[300, 301, 302, 303, 304], max_tokens=20, n=6, temperature=1.0, seed=5, ignore_eos=True)
        texts = self.texts(**body)
        self.assertEqual(len(texts), 6)
        self.assertEqual(self.texts(**body), texts)
        self.assertEqual(self.texts(**{**body, "n": 3}), texts[:3])
        events = self.stream(**body)
        streamed = collections.defaultdict(str)
        for e in events:
            streamed[e["choices"][0]["index"]] += e["choices"][0]["text"]
        self.assertEqual([streamed[i] for i in range(6)], texts)
        self.s.wait_idle()

    def test_client_leaving_cancels_every_choice(self):
        # Six long choices on four slots; the client reads the first bytes and goes.
        body = json.dumps({"prompt": [9, 9], "max_tokens": 250, "n": 6, "ignore_eos": True, "stream": True})
        c = raw_socket(self.s.port)
        c.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        self.assertTrue(c.recv(100).startswith(b"HTTP/1.1 200"))
        before = self.s.metrics()["dsv3_generation_tokens_total"]
        c.close()
        after = self.s.wait_idle()  # the running and the queued choices all end
        self.assertLess(after["dsv3_generation_tokens_total"] - before, 6 * 250)

    def test_n_up_to_max_choices(self):
        out = self.complete(prompt=[1, 2], max_tokens=2, n=16, temperature=1.0, ignore_eos=True)
        self.assertEqual(len(out["choices"]), 16)
        self.assertEqual(out["usage"]["completion_tokens"], 32)
        self.s.wait_idle()

    def test_bad_values_are_400_naming_the_parameter(self):
        cases = [
            ({"presence_penalty": 2.5}, "presence_penalty"),
            ({"presence_penalty": "1"}, "presence_penalty"),
            ({"frequency_penalty": -2.01}, "frequency_penalty"),
            ({"repetition_penalty": 0}, "repetition_penalty"),
            ({"repetition_penalty": -1}, "repetition_penalty"),
            ({"repetition_penalty": 10.5}, "repetition_penalty"),
            ({"logit_bias": {"abc": 1}}, "logit_bias"),
            ({"logit_bias": {"1.5": 1}}, "logit_bias"),
            ({"logit_bias": {str(VOCAB): -100}}, "logit_bias"),
            ({"logit_bias": {"-3": 1}}, "logit_bias"),
            ({"logit_bias": {"99999999999999999999": 1}}, "logit_bias"),
            ({"logit_bias": {"5": 100.5}}, "logit_bias"),
            ({"logit_bias": {"5": -1000}}, "logit_bias"),
            ({"logit_bias": {"5": "ban"}}, "logit_bias"),
            ({"logit_bias": [[5, -100]]}, "logit_bias"),
            ({"logit_bias": {str(t): -100 for t in range(VOCAB)}}, "logit_bias"),
            ({"n": 0}, "n"),
            ({"n": -2}, "n"),
            ({"n": 17}, "n"),
            ({"n": 1.5}, "n"),
            ({"n": 2, "best_of": 3}, "best_of"),
        ]
        for fields, param in cases:
            with self.subTest(fields=str(fields)[:60]):
                status, out, _ = self.s.post("/v1/completions", {"prompt": [1, 2], "max_tokens": 2, **fields})
                self.assertEqual(status, 400, out)
                self.assertEqual(out["error"]["param"], param)
                self.assertEqual(out["error"]["type"], "invalid_request_error")
        status, out, _ = self.s.post("/v1/completions", {"prompt": [1], "logit_bias": {"384": 1}})
        self.assertIn("outside the vocabulary [0, 384)", out["error"]["message"])
        status, out, _ = self.s.post("/v1/completions", {"prompt": [1], "n": 17})
        self.assertIn("16", out["error"]["message"])
        self.assertTrue(self.s.healthy())
        self.s.wait_idle()


class ChatChoices(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(chat_model(), "-q", "--parallel", "4")

    def test_chat_n_choices_streamed_and_not(self):
        body = dict(messages=[{"role": "user", "content": "Say something"}], max_tokens=12, n=3, temperature=1.0,
                    seed=11, presence_penalty=0.5, logit_bias={"5": -100})
        status, full, _ = self.s.post("/v1/chat/completions", body)
        self.assertEqual(status, 200, full)
        self.assertEqual([c["index"] for c in full["choices"]], [0, 1, 2])
        status, events, _ = self.s.stream("/v1/chat/completions", {**body, "stream": True})
        self.assertEqual(status, 200, events)
        self.assertEqual(events[-1], "[DONE]")
        by_index = collections.defaultdict(list)
        for e in events[:-1]:
            self.assertEqual(len(e["choices"]), 1)
            by_index[e["choices"][0]["index"]].append(e)
        self.assertEqual(sorted(by_index), [0, 1, 2])
        for i, choice in enumerate(full["choices"]):
            chunks = by_index[i]
            self.assertEqual(chunks[0]["choices"][0]["delta"]["role"], "assistant")  # each choice opens with its role
            self.assertEqual([c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]],
                             [choice["finish_reason"]])
            content, reasoning, _ = chat_parts(chunks)
            self.assertEqual(content, choice["message"]["content"] or "")
            self.assertEqual(reasoning, choice["message"].get("reasoning_content", ""))

    def test_chat_bad_values_name_the_parameter(self):
        msgs = [{"role": "user", "content": "hi"}]
        for fields, param in (({"n": 99}, "n"), ({"frequency_penalty": 9}, "frequency_penalty"),
                              ({"logit_bias": {"x": 1}}, "logit_bias"), ({"repetition_penalty": 0}, "repetition_penalty")):
            status, out, _ = self.s.post("/v1/chat/completions", {"messages": msgs, **fields})
            self.assertEqual((status, out["error"]["param"]), (400, param))


if __name__ == "__main__":
    unittest.main()
