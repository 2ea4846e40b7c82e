"""End-to-end tests of the text side of `dsv3 serve` (a model with a
tokenizer): text prompts, streamed text equal to the non-streamed text and to
`dsv3 run --prompt`, stop strings, chat through the chat format (streamed ==
non-streamed, multi-turn prefix reuse, tool calls and tool outputs in the
history, tools described in the prompt, the developer role), chat logprobs,
and bad chat input."""
import json
import os
import unittest

from harness import Server, ServerTest, chat_model, chat_parts, completion_text, run_cli

PROMPTS = ["Hello world", "The capital of France is", "def f(x):\n    return", "你好，世界", "emoji 😀 and tabs\t!"]


class Text(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.model = chat_model()
        cls.s = Server(cls.model, "--parallel", "4")

    def complete(self, **body):
        st, out, _ = self.s.post("/v1/completions", body)
        self.assertEqual(st, 200, out)
        return out

    def chat(self, **body):
        st, out, _ = self.s.post("/v1/chat/completions", body)
        self.assertEqual(st, 200, out)
        return out

    def stream(self, path, **body):
        st, events, _ = self.s.stream(path, {**body, "stream": True})
        self.assertEqual(st, 200, events)
        self.assertEqual(events[-1], "[DONE]")
        return events[:-1]

    def test_models_reports_the_tokenizer(self):
        info = self.s.get("/v1/models")[1]["data"][0]["dsv3"]
        self.assertEqual((info["tokenizer"], info["chat"]), (True, True))

    def test_text_equals_run_streamed_and_not(self):
        for prompt in PROMPTS:
            with self.subTest(prompt=prompt):
                printed = run_cli("run", "-q", "-m", self.model, "--prompt", prompt, "-n", "16", "--temperature", "0")
                self.assertTrue(printed.endswith("\n"))
                expected = printed[:-1]  # run ends its output with a newline
                full = self.complete(prompt=prompt, max_tokens=16, temperature=0)
                self.assertEqual(full["choices"][0]["text"], expected)
                events = self.stream("/v1/completions", prompt=prompt, max_tokens=16, temperature=0)
                self.assertEqual(completion_text(events), expected)
                # A content chunk and the final one at least: tokens ready together may
                # share a chunk (test_api checks that a long stream arrives in pieces).
                self.assertGreaterEqual(len(events), 2)

    def test_stop_strings(self):
        base = self.complete(prompt="Hello world", max_tokens=24, temperature=0, ignore_eos=True)["choices"][0]["text"]
        # A stop string from the middle of the output (likely spanning tokens).
        cut = len(base) // 2
        stop = base[cut:cut + 3]
        expected = base[:base.index(stop)]
        for stream in (False, True):
            body = dict(prompt="Hello world", max_tokens=24, temperature=0, ignore_eos=True, stop=[stop, "\u2603never"])
            if stream:
                events = self.stream("/v1/completions", **body)
                text, reason = completion_text(events), events[-1]["choices"][0]["finish_reason"]
            else:
                out = self.complete(**body)
                text, reason = out["choices"][0]["text"], out["choices"][0]["finish_reason"]
            self.assertEqual((text, reason), (expected, "stop"))

    def test_chat_streamed_equals_non_streamed(self):
        convs = [[{"role": "user", "content": "Hi there"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}],
                 [{"role": "developer", "content": "Answer in French."}, {"role": "user", "content": "Bonjour"}]]
        for messages in convs:
            for seed in (None, 7):
                body = dict(messages=messages, max_tokens=24, temperature=0 if seed is None else 0.8)
                if seed is not None:
                    body["seed"] = seed
                full = self.chat(**body)
                msg = full["choices"][0]["message"]
                self.assertEqual(full["object"], "chat.completion")
                events = self.stream("/v1/chat/completions", **body)
                content, reasoning, calls = chat_parts(events)
                self.assertEqual(events[0]["choices"][0]["delta"]["role"], "assistant")
                self.assertEqual(content, msg["content"] or "")
                self.assertEqual(reasoning, msg.get("reasoning_content", ""))
                self.assertEqual([c["function"] for c in calls],
                                 [c["function"] for c in msg.get("tool_calls", [])])
                self.assertEqual(events[-1]["choices"][0]["finish_reason"], full["choices"][0]["finish_reason"])

    def test_chat_prompt_is_the_chat_format(self):
        messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}]
        path = os.path.join(os.path.dirname(self.model), "conv.json")
        with open(path, "w") as f:
            json.dump(messages, f)
        ids = run_cli("tokenize", "--tokenizer", self.model, "--chat", path, "--add-generation-prompt").split()
        out = self.chat(messages=messages, max_tokens=1)
        self.assertEqual(out["usage"]["prompt_tokens"], len(ids))
        # The same ids through /v1/completions give the same first token.
        first = self.complete(prompt=list(map(int, ids)), max_tokens=4, temperature=0, logprobs=0)
        chat = self.chat(messages=messages, max_tokens=4, temperature=0, logprobs=True)
        self.assertEqual([t["logprob"] for t in chat["choices"][0]["logprobs"]["content"]],
                         first["choices"][0]["logprobs"]["token_logprobs"])

    def test_multi_turn_reuses_the_cached_prefix(self):
        turn1 = [{"role": "user", "content": "Tell me a story about a cat."}]
        a = self.chat(messages=turn1, max_tokens=8, temperature=0)
        turn2 = turn1 + [{"role": "assistant", "content": a["choices"][0]["message"]["content"] or "ok"},
                         {"role": "user", "content": "And then?"}]
        b = self.chat(messages=turn2, max_tokens=8, temperature=0)
        self.assertGreaterEqual(b["usage"]["prompt_tokens_details"]["cached_tokens"], a["usage"]["prompt_tokens"] - 1)

    def test_tool_calls_and_outputs_in_history_and_tools_in_prompt(self):
        history = [{"role": "user", "content": "Weather in Paris?"},
                   {"role": "assistant", "content": None, "tool_calls": [
                       {"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "22C, sunny"}]
        self.chat(messages=history, max_tokens=4)
        self.stream("/v1/chat/completions", messages=history, max_tokens=4)
        # The tiny test tokenizer spends about a token per character, so keep this short.
        hi = [{"role": "user", "content": "Hi"}]
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
        plain, with_tools = self.chat(messages=hi, max_tokens=4), self.chat(messages=hi, tools=tools, max_tokens=4)
        self.assertGreater(with_tools["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"] + 10)
        st, err, _ = self.s.post("/v1/chat/completions", {"messages": history, "tools": [{"type": "function"}]})
        self.assertEqual((st, err["error"]["param"]), (400, "tools"))  # no function name

    def test_bad_chat_messages(self):
        for messages in ([{"role": "assistant", "content": None}],
                         [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                         [{"role": "assistant", "content": "x", "tool_calls": "nope"}]):
            st, err, _ = self.s.post("/v1/chat/completions", {"messages": messages})
            self.assertEqual(st, 400, err)
            self.assertEqual(err["error"]["param"], "messages")
        self.assertTrue(self.s.healthy())


if __name__ == "__main__":
    unittest.main(verbosity=2)
