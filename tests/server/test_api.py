"""End-to-end tests of every endpoint of a real `dsv3 serve`, streaming and not:
greedy output equals `dsv3 run` and streamed equals non-streamed; seeded
sampling, logprobs, stop tokens, usage (with stream_options.include_usage),
prefix reuse, concurrency, /v1/models, /health, /metrics, the page at /,
API keys, timeouts and graceful shutdown."""
import json
import os
import signal
import threading
import time
import unittest

from harness import GOLDEN, Server, ServerTest, completion_text, run_cli

MODEL = os.path.join(GOLDEN, "v3_tiny_bf16")
PROMPTS = [[0, 15, 27], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [200, 3], [7] * 30, [0, 100, 200, 300]]


def run_greedy(model, prompt, n):
    return run_cli("run", "-q", "-m", model, "--prompt-ids", " ".join(map(str, prompt)), "-n", str(n),
                   "--temperature", "0").strip()


class Api(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(MODEL, "--parallel", "4", "--prefill-chunk", "8")

    def complete(self, **body):
        status, out, _ = self.s.post("/v1/completions", body)
        self.assertEqual(status, 200, out)
        return out

    def stream(self, **body):
        status, events, times = self.s.stream("/v1/completions", {**body, "stream": True})
        self.assertEqual(status, 200, events)
        self.assertEqual(events[-1], "[DONE]")
        return events[:-1], times

    def test_greedy_equals_run_streamed_and_not(self):
        for prompt in PROMPTS:
            expected = run_greedy(MODEL, prompt, 12)
            full = self.complete(prompt=prompt, max_tokens=12, temperature=0)
            self.assertEqual(full["choices"][0]["text"], expected)
            self.assertEqual(full["object"], "text_completion")
            events, _ = self.stream(prompt=prompt, max_tokens=12, temperature=0)
            self.assertEqual(completion_text(events), expected)
            # A content chunk and the final one at least: the server sends whatever
            # tokens are ready when the connection's thread gets to write, so a fast
            # model may deliver a short completion in one chunk.
            self.assertGreaterEqual(len(events), 2)
            self.assertEqual(events[-1]["choices"][0]["finish_reason"], full["choices"][0]["finish_reason"])
            self.assertTrue(all("usage" not in e for e in events))

    def test_long_stream_arrives_in_pieces(self):
        # 100 tokens: the stream really flows while the model generates.
        events, _ = self.stream(prompt=PROMPTS[0], max_tokens=100, temperature=0)
        self.assertEqual(completion_text(events), run_greedy(MODEL, PROMPTS[0], 100))
        self.assertGreater(len(events), 2)

    def test_other_golden_models_match_run(self):
        for name in ("v3_tiny_fp8", "v2lite_tiny_bf16"):
            model = os.path.join(GOLDEN, name)
            s = Server(model, "-q")
            try:
                for prompt in PROMPTS[:3]:
                    expected = run_greedy(model, prompt, 10)
                    st, full, _ = s.post("/v1/completions", {"prompt": prompt, "max_tokens": 10, "temperature": 0})
                    self.assertEqual((st, full["choices"][0]["text"]), (200, expected))
                    st, events, _ = s.stream("/v1/completions", {"prompt": prompt, "max_tokens": 10,
                                                                  "temperature": 0, "stream": True})
                    self.assertEqual(completion_text(events[:-1]), expected)
            finally:
                self.assertEqual(s.stop(), 0)

    def test_usage_and_include_usage(self):
        full = self.complete(prompt=[3, 4, 5], max_tokens=7, temperature=0, ignore_eos=True)
        u = full["usage"]
        self.assertEqual((u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]), (3, 7, 10))
        self.assertEqual(full["choices"][0]["finish_reason"], "length")
        events, _ = self.stream(prompt=[3, 4, 5], max_tokens=7, temperature=0, ignore_eos=True,
                                stream_options={"include_usage": True})
        *chunks, last = events
        self.assertEqual(last["choices"], [])
        self.assertEqual(last["usage"]["completion_tokens"], 7)
        self.assertTrue(all(c["usage"] is None for c in chunks))

    def test_seeded_sampling_is_reproducible_and_streams_the_same(self):
        body = dict(prompt=[9, 8, 7], max_tokens=16, temperature=0.9, top_p=0.95, top_k=50, min_p=0.01,
                    seed=1234, ignore_eos=True)
        a = self.complete(**body)["choices"][0]["text"]
        b = self.complete(**body)["choices"][0]["text"]
        events, _ = self.stream(**body)
        self.assertEqual(a, b)
        self.assertEqual(completion_text(events), a)
        others = {self.complete(**{**body, "seed": s})["choices"][0]["text"] for s in range(5)}
        self.assertGreater(len(others), 1)

    def test_logprobs(self):
        full = self.complete(prompt=[0, 15, 27], max_tokens=5, temperature=0, logprobs=3, ignore_eos=True)
        lp = full["choices"][0]["logprobs"]
        ids = full["choices"][0]["text"].split()
        self.assertEqual(lp["tokens"], ids)
        for tok, val, top in zip(lp["tokens"], lp["token_logprobs"], lp["top_logprobs"]):
            self.assertEqual(len(top), 3)
            self.assertEqual(max(top, key=top.get), tok)  # greedy took the most likely
            self.assertAlmostEqual(top[tok], val, places=5)
            self.assertLessEqual(val, 0)
        events, _ = self.stream(prompt=[0, 15, 27], max_tokens=5, temperature=0, logprobs=3, ignore_eos=True)
        streamed = [t for e in events for c in e["choices"] if c["logprobs"] for t in c["logprobs"]["token_logprobs"]]
        # Equal up to float rounding: the second request reuses the cached prompt
        # prefix, so its last prompt row is computed in a batch of another size
        # (the tiled kernels may sum in another order).
        self.assertEqual(len(streamed), len(lp["token_logprobs"]))
        for a, b in zip(streamed, lp["token_logprobs"]):
            self.assertAlmostEqual(a, b, places=5)

    def test_stop_token_ids(self):
        ids = self.complete(prompt=[1, 2, 3], max_tokens=12, temperature=0, ignore_eos=True)["choices"][0]["text"]
        ids = list(map(int, ids.split()))
        stop = ids[4]
        out = self.complete(prompt=[1, 2, 3], max_tokens=12, temperature=0, ignore_eos=True, stop_token_ids=[stop])
        got = list(map(int, out["choices"][0]["text"].split()))
        self.assertEqual(got, ids[:ids.index(stop) + 1])
        self.assertEqual(out["choices"][0]["finish_reason"], "stop")

    def test_prompt_forms_and_prefix_reuse(self):
        prompt = list(range(10, 50))
        a = self.complete(prompt=prompt, max_tokens=4, temperature=0)
        b = self.complete(prompt=[prompt], max_tokens=4, temperature=0)  # a batch of one
        self.assertEqual(a["choices"][0]["text"], b["choices"][0]["text"])
        self.assertEqual(b["usage"]["prompt_tokens_details"]["cached_tokens"], len(prompt) - 1)

    def test_concurrent_requests_match_sequential(self):
        prompts = [[i, i + 1, i + 2] + [i] * (i % 7) for i in range(20, 28)]
        expected = [self.complete(prompt=p, max_tokens=20, temperature=0, ignore_eos=True)["choices"][0]["text"]
                    for p in prompts]
        results = [None] * len(prompts)

        def go(i):
            results[i] = completion_text(self.stream(prompt=prompts[i], max_tokens=20, temperature=0,
                                                     ignore_eos=True)[0])
        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, expected)
        self.s.wait_idle()

    def test_models_health_metrics_page(self):
        st, body, _ = self.s.get("/v1/models")
        self.assertEqual(st, 200)
        self.assertEqual(body["object"], "list")
        model = body["data"][0]
        self.assertEqual((model["id"], model["object"], model["max_model_len"]), ("v3_tiny_bf16", "model", 256))
        self.assertEqual(self.s.get("/v1/models/v3_tiny_bf16")[1]["id"], "v3_tiny_bf16")
        st, body, _ = self.s.get("/v1/models/gpt-4")
        self.assertEqual((st, body["error"]["code"]), (404, "model_not_found"))
        st, body, _ = self.s.get("/health")
        self.assertEqual((st, body["status"]), (200, "ok"))
        self.complete(prompt=[5, 6], max_tokens=3)
        m = self.s.metrics()
        self.assertGreaterEqual(m['dsv3_requests_total{endpoint="/v1/completions",code="200"}'], 1)
        self.assertGreaterEqual(m["dsv3_generation_tokens_total"], 3)
        self.assertGreaterEqual(m["dsv3_time_to_first_token_seconds_count"], 1)
        self.assertGreater(m['dsv3_time_to_first_token_seconds_bucket{le="+Inf"}'], 0)
        for name in ("dsv3_requests_waiting", "dsv3_requests_running", "dsv3_prompt_tokens_total",
                     "dsv3_generation_tokens_per_second", "dsv3_inter_token_latency_seconds_count",
                     "process_resident_memory_bytes", "dsv3_kv_cache_bytes"):
            self.assertIn(name, m)
        st, page, headers = self.s.get("/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", headers["Content-Type"])
        self.assertIn("dsv3 chat", page)

    def test_chat_without_tokenizer_is_a_clear_400(self):
        for stream in (False, True):
            st, body, _ = self.s.post("/v1/chat/completions",
                                      {"messages": [{"role": "user", "content": "hi"}], "stream": stream})
            self.assertEqual(st, 400)
            self.assertIn("no tokenizer", body["error"]["message"])
            self.assertEqual(body["error"]["param"], "messages")


class Auth(unittest.TestCase):
    def test_api_key_checked_on_every_request(self):
        s = Server(MODEL, "-q", "--api-key", "sekret-123")
        try:
            body = {"prompt": [1, 2], "max_tokens": 2}
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekret-123"}):
                st, out, _ = s.post("/v1/completions", body, headers)
                self.assertEqual((st, out["error"]["code"]), (401, "invalid_api_key"))
                self.assertEqual(s.get("/v1/models", headers)[0], 401)
                self.assertEqual(s.get("/metrics", headers)[0], 401)
                self.assertEqual(s.get("/health", headers)[0], 401)
            good = {"Authorization": "Bearer sekret-123"}
            self.assertEqual(s.post("/v1/completions", body, good)[0], 200)
            self.assertEqual(s.get("/v1/models", good)[0], 200)
            st, _, _ = s.stream("/v1/completions", {**body, "stream": True}, good)
            self.assertEqual(st, 200)
            self.assertEqual(s.get("/")[0], 200)  # the static page is public; it asks for the key
        finally:
            self.assertEqual(s.stop(), 0)


class Lifecycle(unittest.TestCase):
    def test_request_timeout(self):
        # 5 ms: the tiny model makes 250 tokens in ~22 ms on a 2-core machine,
        # too close to a 20 ms timeout for it to fire every time.
        s = Server(MODEL, "-q", "--request-timeout", "0.005", "--parallel", "1")
        try:
            body = {"prompt": [1, 2], "max_tokens": 250, "ignore_eos": True}
            st, out, _ = s.post("/v1/completions", body)
            self.assertEqual((st, out["error"]["code"]), (503, "timeout"))
            st, events, _ = s.stream("/v1/completions", {**body, "stream": True})
            self.assertEqual(st, 200)
            self.assertEqual(events[-1], "[DONE]")
            self.assertEqual(events[-2]["error"]["code"], "timeout")
            self.assertTrue(s.healthy())
            s.wait_idle()
        finally:
            self.assertEqual(s.stop(), 0)

    def test_sigterm_finishes_running_streams_then_exits(self):
        s = Server(MODEL, "-q", "--parallel", "2", "--shutdown-grace", "30")
        results = {}

        def client():
            results["a"] = s.stream("/v1/completions", {"prompt": [4, 5], "max_tokens": 200, "ignore_eos": True,
                                                        "stream": True}, on_event=lambda e: signal_once())
        sent = threading.Event()

        def signal_once():
            if not sent.is_set():
                sent.set()
                s.proc.send_signal(signal.SIGTERM)
        t = threading.Thread(target=client)
        t.start()
        t.join(60)
        rc = s.stop()
        self.assertEqual(rc, 0)
        st, events, _ = results["a"]
        self.assertEqual(events[-1], "[DONE]")
        self.assertEqual(events[-2]["choices"][0]["finish_reason"], "length")  # it was allowed to finish
        self.assertEqual(len(completion_text(events[:-1]).split()), 200)

    def test_sigterm_without_grace_cancels_cleanly(self):
        s = Server(MODEL, "-q", "--parallel", "1", "--shutdown-grace", "0")
        results = {}
        sent = threading.Event()

        def on_event(e):
            if not sent.is_set():
                sent.set()
                s.proc.send_signal(signal.SIGINT)

        def client():
            results["a"] = s.stream("/v1/completions", {"prompt": [4, 5], "max_tokens": 250, "ignore_eos": True,
                                                        "stream": True}, on_event=on_event)
        t = threading.Thread(target=client)
        t.start()
        t.join(60)
        self.assertEqual(s.stop(), 0)
        st, events, _ = results["a"]
        self.assertEqual(events[-1], "[DONE]")
        last = events[-2]
        if "error" in last:  # cancelled mid-stream: a final error event, not a torn connection
            self.assertEqual(last["error"]["code"], "server_shutdown")
        else:  # the tiny model may have finished before the cancel landed
            self.assertEqual(last["choices"][0]["finish_reason"], "length")


class Spec(unittest.TestCase):
    """--spec mtp: MTP speculative decoding inside the batching (the golden
    models have one MTP layer). Greedy output stays `dsv3 run`'s, streamed or
    not, with concurrent requests; acceptance counters appear in /metrics."""

    def test_greedy_unchanged_and_metrics(self):
        for k in ("1", "3"):
            s = Server(MODEL, "-q", "--spec", "mtp", "--draft-tokens", k, "--parallel", "3", "--prefill-chunk", "8")
            try:
                self.assertIn("speculation: MTP, %s draft token(s)" % k, s.banner)
                expected = [run_greedy(MODEL, p, 12) for p in PROMPTS]
                results = [None] * len(PROMPTS)

                def one(i):
                    st, full, _ = s.post("/v1/completions", {"prompt": PROMPTS[i], "max_tokens": 12, "temperature": 0})
                    st2, events, _ = s.stream("/v1/completions", {"prompt": PROMPTS[i], "max_tokens": 12,
                                                                   "temperature": 0, "stream": True})
                    results[i] = (st, full["choices"][0]["text"], st2, completion_text(events[:-1]))

                threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                for i, e in enumerate(expected):
                    self.assertEqual(results[i], (200, e, 200, e), "K=%s prompt %d" % (k, i))
                m = s.metrics()
                self.assertEqual(m["dsv3_spec_draft_tokens"], int(k))
                self.assertGreater(m["dsv3_spec_drafted_tokens_total"], 0)
                self.assertLessEqual(m["dsv3_spec_accepted_tokens_total"], m["dsv3_spec_drafted_tokens_total"])
                self.assertEqual(sum(m['dsv3_spec_position_drafted_total{position="%d"}' % (j + 1)]
                                     for j in range(int(k))), m["dsv3_spec_drafted_tokens_total"])
                self.assertGreaterEqual(m["dsv3_spec_tokens_per_round"], 1.0)
            finally:
                self.assertEqual(s.stop(), 0)

    def test_auto_without_mtp_falls_back_with_a_warning(self):
        s = Server(os.path.join(GOLDEN, "v2lite_tiny_bf16"), "--spec", "auto")
        try:
            self.assertIn("speculation: off", s.banner)
            st, full, _ = s.post("/v1/completions", {"prompt": [0, 1, 2], "max_tokens": 3, "temperature": 0})
            self.assertEqual(st, 200)
            self.assertEqual(s.metrics()["dsv3_spec_draft_tokens"], 0)
        finally:
            self.assertEqual(s.stop(), 0)
        self.assertTrue(any("--spec auto: the model has no MTP layer" in l for l in s.stderr_lines), s.stderr_lines)


if __name__ == "__main__":
    unittest.main(verbosity=2)
