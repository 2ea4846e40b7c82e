"""Structured outputs through the HTTP API (issue 19) on the tiny chat model
(random weights: the text is gibberish, the structure is the grammar's):
response_format json_schema / json_object on chat and completions, streamed
and not, with n > 1 and with MTP speculation (same output as without);
tool_choice "required", a named function and "none"; and the refusals, each
a 400 naming the field (and the schema keyword's path).
"""
import json
import unittest

from harness import Server, ServerTest, chat_parts, long_chat_model

PERSON = {"type": "object", "additionalProperties": False, "required": ["zeta", "alpha", "tags"],
          "properties": {"zeta": {"type": "string", "maxLength": 6}, "alpha": {"type": "integer"},
                         "tags": {"type": "array", "maxItems": 2, "items": {"enum": ["x", "yy", 3]}}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer"}},
    "required": ["city"], "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {},
                                                                               "additionalProperties": False}}}


def schema_format(schema, strict=True):
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": strict}}


def check_person(t, text):
    doc = json.loads(text)
    t.assertEqual(list(doc), ["zeta", "alpha", "tags"])  # the schema's order, not sorted
    t.assertLessEqual(len(doc["zeta"]), 6)
    t.assertIsInstance(doc["alpha"], int)
    t.assertTrue(all(x in ("x", "yy", 3) for x in doc["tags"]) and len(doc["tags"]) <= 2)


class Structured(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.model = long_chat_model()
        cls.s = Server(cls.model, "--parallel", "4")

    def chat(self, **body):
        body.setdefault("messages", [{"role": "user", "content": "Hi"}])
        body.setdefault("max_tokens", 300)
        st, r, _ = self.s.post("/v1/chat/completions", body)
        self.assertEqual(st, 200, r)
        return r

    def test_json_schema_chat_streamed_and_not(self):
        for seed in range(4):
            r = self.chat(response_format=schema_format(PERSON), seed=seed)
            self.assertEqual(r["choices"][0]["finish_reason"], "stop")
            check_person(self, r["choices"][0]["message"]["content"])
            st, events = self.s.stream("/v1/chat/completions", {
                "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 300, "seed": seed, "stream": True,
                "response_format": schema_format(PERSON)})[:2]
            self.assertEqual(st, 200)
            self.assertEqual(chat_parts(events)[0], r["choices"][0]["message"]["content"])

    def test_json_object_completions_with_choices(self):
        st, r, _ = self.s.post("/v1/completions", {"prompt": "Data:", "max_tokens": 400, "n": 3, "seed": 5,
                                                   "response_format": {"type": "json_object"}})
        self.assertEqual(st, 200, r)
        self.assertEqual(len(r["choices"]), 3)
        for c in r["choices"]:
            if c["finish_reason"] == "stop":  # a free-form object may run past max_tokens
                self.assertIsInstance(json.loads(c["text"]), dict)
            else:
                self.assertTrue(c["text"].startswith("{"))

    def test_forced_tool_calls(self):
        for choice in ("required", {"type": "function", "function": {"name": "get_time"}}):
            for seed in range(3):
                r = self.chat(tools=[WEATHER, CLOCK], tool_choice=choice, seed=seed)
                c = r["choices"][0]
                self.assertEqual(c["finish_reason"], "tool_calls", c)
                call = c["message"]["tool_calls"][0]["function"]
                args = json.loads(call["arguments"])
                if choice != "required":
                    self.assertEqual((call["name"], args), ("get_time", {}))
                else:
                    self.assertIn(call["name"], ("get_weather", "get_time"))
                    if call["name"] == "get_weather":
                        self.assertLessEqual(len(args["city"]), 8)

    def test_tool_choice_none_keeps_tools_out_of_the_prompt(self):
        plain = self.chat(max_tokens=2, temperature=0)
        none = self.chat(max_tokens=2, temperature=0, tools=[WEATHER], tool_choice="none")
        self.assertEqual(none["usage"]["prompt_tokens"], plain["usage"]["prompt_tokens"])

    def test_refusals_name_the_field(self):
        cases = [
            (schema_format({"type": "object", "properties": {"a": {"type": "string", "format": "date"}},
                            "required": ["a"], "additionalProperties": False}), "response_format", "#/properties/a/format"),
            (schema_format({"type": "string", "pattern": "^a"}, strict=False), "response_format", "#/pattern"),
            (schema_format({"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}, False),
             "response_format", "no finite document"),
            (schema_format({"type": "object", "properties": {"a": {"type": "string"}}}), "response_format",
             "additionalProperties"),
            ({"type": "xml"}, "response_format", "json_schema"),
            ({"type": "json_schema"}, "response_format", "schema"),
        ]
        for fmt, param, words in cases:
            st, r, _ = self.s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}],
                                                            "response_format": fmt})
            self.assertEqual((st, r["error"]["param"]), (400, param), r)
            self.assertIn(words, r["error"]["message"])
        for body, param in [({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
                             "tool_choice"),
                            ({"tool_choice": "required"}, "tool_choice"),
                            ({"tool_choice": "always", "tools": [WEATHER]}, "tool_choice")]:
            st, r, _ = self.s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}], **body})
            self.assertEqual((st, r["error"]["param"]), (400, param), r)


class StructuredWithSpeculation(ServerTest):
    """Drafts are checked against the grammar: greedy output is the same with --spec mtp."""

    @classmethod
    def setUpClass(cls):
        cls.s = Server(long_chat_model(), "--spec", "mtp", "--draft-tokens", "2")

    def test_same_as_without_speculation(self):
        body = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 200, "temperature": 0,
                "response_format": schema_format(PERSON)}
        st, spec, _ = self.s.post("/v1/chat/completions", body)
        self.assertEqual(st, 200, spec)
        plain = Server(long_chat_model())
        try:
            st, ref, _ = plain.post("/v1/chat/completions", body)
        finally:
            self.assertEqual(plain.stop(), 0)
        self.assertEqual(spec["choices"][0]["message"]["content"], ref["choices"][0]["message"]["content"])
        check_person(self, spec["choices"][0]["message"]["content"])


class TokenIdMode(ServerTest):
    @classmethod
    def setUpClass(cls):
        import os
        from harness import GOLDEN
        cls.s = Server(os.path.join(GOLDEN, "v3_tiny_bf16"))

    def test_needs_a_tokenizer(self):
        st, r, _ = self.s.post("/v1/completions", {"prompt": [1, 2], "response_format": {"type": "json_object"}})
        self.assertEqual((st, r["error"]["param"]), (400, "response_format"), r)
        self.assertIn("tokenizer", r["error"]["message"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
