"""A forced tool call (tool_choice "required" or a named function, issue 19)
is written with the chat format's marker tokens, so the server hands it back
as a parsed tool call: on chat (whole and streamed) and on /v1/responses, for
several seeds. The grammar stands a marker in as 0xFF + its id's bytes; the
test tokenizer, being byte-level, also has a lone 0xFF token, and before
that token was kept out of the grammar's vocabulary the model could spell
the stand-in byte by byte (content "\\xFFw\\x01\\x00\\x00function..." and no
tool_calls, 3 requests in 4). Runs on the tiny chat model at a 4096-token
context (a tool prompt is over 256 tokens)."""
import json
import unittest

from harness import Server, ServerTest, chat_parts, long_chat_model

PARAMS = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
                                           "tags": {"type": "array", "items": {"type": "string", "maxLength": 4},
                                                    "maxItems": 2}},
          "required": ["name", "tags"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "add_pet", "parameters": PARAMS, "strict": True}},
         {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
FLAT = [{"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"],
         "strict": t["function"].get("strict", False)} for t in TOOLS]
MESSAGES = [{"role": "user", "content": "pet"}]
SEEDS = range(1, 7)


class ForcedToolCalls(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(long_chat_model(), "-q", "--parallel", "2")

    def assert_pet(self, name, arguments):
        self.assertEqual(name, "add_pet")
        args = json.loads(arguments)
        self.assertEqual(sorted(args), ["name", "tags"])
        self.assertLessEqual(len(args["name"]), 8)
        self.assertLessEqual(len(args["tags"]), 2)

    def test_chat_required_and_named(self):
        for choice in ("required", {"type": "function", "function": {"name": "add_pet"}}):
            tools = TOOLS[:1] if choice == "required" else TOOLS
            for seed in SEEDS:
                body = {"messages": MESSAGES, "tools": tools, "tool_choice": choice, "max_tokens": 300, "seed": seed}
                st, out, _ = self.s.post("/v1/chat/completions", body)
                self.assertEqual(st, 200, out)
                c = out["choices"][0]
                self.assertEqual((c["finish_reason"], c["message"]["content"]), ("tool_calls", None), (choice, seed, c))
                self.assertEqual(len(c["message"]["tool_calls"]), 1, c)
                fn = c["message"]["tool_calls"][0]["function"]
                self.assert_pet(fn["name"], fn["arguments"])

    def test_chat_streamed(self):
        for seed in SEEDS:
            body = {"messages": MESSAGES, "tools": TOOLS, "max_tokens": 300, "seed": seed, "stream": True,
                    "tool_choice": {"type": "function", "function": {"name": "add_pet"}}}
            st, events, _ = self.s.stream("/v1/chat/completions", body)
            self.assertEqual(st, 200, events)
            content, _, calls = chat_parts(events)
            self.assertEqual((content, len(calls)), ("", 1), (seed, content))
            self.assert_pet(calls[0]["function"]["name"], calls[0]["function"]["arguments"])

    def test_responses_named(self):
        for seed in SEEDS:
            body = {"input": "pet", "tools": FLAT, "tool_choice": {"type": "function", "name": "add_pet"},
                    "max_output_tokens": 300, "seed": seed}
            st, out, _ = self.s.post("/v1/responses", body)
            self.assertEqual(st, 200, out)
            self.assertEqual([i["type"] for i in out["output"]], ["function_call"], (seed, out["output"]))
            self.assert_pet(out["output"][0]["name"], out["output"][0]["arguments"])


if __name__ == "__main__":
    unittest.main()
