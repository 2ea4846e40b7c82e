"""End-to-end tests of POST /v1/responses (the OpenAI Responses API, issue
19) on a model with a tokenizer and chat format: a response is the chat
completion of the same conversation (prompt tokens and greedy text equal,
seeded sampling equal), input items (content parts, developer messages,
function_call / function_call_output) render as chat's messages and tools,
tool_choice "none" keeps tools out of the prompt, the response object's
fields and echoed settings, streamed events (names, sequence numbers, item
and part lifecycle) assembling to exactly the non-streamed response,
completed vs incomplete (max_output_tokens), a failed generation (503, or
an `error` event and response.failed), every refusal naming its field, the
endpoints that would need stored responses, a client leaving a stream, and
a tokenizer-less model refused with a 400."""
import json
import os
import unittest

from harness import GOLDEN, Server, ServerTest, chat_model

HI = "Hi there"


def sse_events(server, body, timeout=60, on_event=None):
    """POSTs a streaming /v1/responses request. Returns (status, events) with
    events a list of (event name, payload), or (status, error JSON)."""
    c = server.conn(timeout)
    c.request("POST", "/v1/responses", json.dumps({**body, "stream": True}), {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        out = json.loads(r.read())
        c.close()
        return r.status, out
    assert r.getheader("Content-Type", "").startswith("text/event-stream"), r.getheaders()
    events, name = [], None
    while True:
        line = r.readline()
        if not line:
            break
        line = line.decode("utf-8").rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[len("data: "):])))
            if on_event and on_event(events[-1]) is False:
                break
        elif not line:
            name = None
    c.close()
    return 200, events


def without_ids(response):
    """A response object with what differs between two requests removed."""
    r = json.loads(json.dumps(response))
    for key in ("id", "created_at", "completed_at"):
        r.pop(key, None)
    for item in r.get("output", []):
        item.pop("id", None)
    r["usage"]["input_tokens_details"].pop("cached_tokens", None)  # the prefix cache differs between runs
    return r


class Responses(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.model = chat_model()
        cls.s = Server(cls.model, "--parallel", "4")

    def respond(self, **body):
        st, out, _ = self.s.post("/v1/responses", body)
        self.assertEqual(st, 200, out)
        return out

    def chat(self, **body):
        st, out, _ = self.s.post("/v1/chat/completions", body)
        self.assertEqual(st, 200, out)
        return out

    def assert_same_turn(self, response, chat):
        """A response and the chat completion of the same conversation agree."""
        msg = chat["choices"][0]["message"]
        self.assertEqual(response["output_text"], msg["content"] or "")
        self.assertEqual(response["usage"]["input_tokens"], chat["usage"]["prompt_tokens"])
        self.assertEqual(response["usage"]["output_tokens"], chat["usage"]["completion_tokens"])
        finish = chat["choices"][0]["finish_reason"]
        self.assertEqual(response["status"], "incomplete" if finish == "length" else "completed")

    def test_a_response_is_the_chat_turn_it_means(self):
        for instructions in (None, "Be brief."):
            body = dict(input=HI, max_output_tokens=12, temperature=0)
            messages = [{"role": "user", "content": HI}]
            if instructions:
                body["instructions"] = instructions
                messages.insert(0, {"role": "system", "content": instructions})
            r = self.respond(**body)
            self.assert_same_turn(r, self.chat(messages=messages, max_tokens=12, temperature=0))
            self.assertTrue(r["id"].startswith("resp_"), r["id"])
            self.assertEqual((r["object"], r["model"]), ("response", os.path.basename(self.model)))
            self.assertIsInstance(r["created_at"], int)
            [item] = r["output"]
            self.assertEqual((item["type"], item["role"], item["status"]), ("message", "assistant", r["status"]))
            self.assertTrue(item["id"].startswith("msg_"))
            self.assertEqual(item["content"], [{"type": "output_text", "text": r["output_text"], "annotations": []}])
            u = r["usage"]
            self.assertEqual(u["total_tokens"], u["input_tokens"] + u["output_tokens"])
            self.assertEqual(u["output_tokens_details"], {"reasoning_tokens": 0})
            self.assertIn("cached_tokens", u["input_tokens_details"])

    def test_seeded_sampling_equals_chat(self):
        fields = dict(temperature=1.0, top_p=0.9, seed=11, presence_penalty=0.5, logit_bias={"7": -100})
        r = self.respond(input=HI, max_output_tokens=16, **fields)
        self.assert_same_turn(r, self.chat(messages=[{"role": "user", "content": HI}], max_tokens=16, **fields))
        self.assertEqual(r["output_text"], self.respond(input=HI, max_output_tokens=16, **fields)["output_text"])

    def test_input_items_render_as_chat_messages(self):
        items = [{"role": "developer", "content": "Use tools."},
                 {"type": "message", "role": "user",
                  "content": [{"type": "input_text", "text": "Weather in "}, {"type": "input_text", "text": "Paris?"}]},
                 {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                 {"type": "function_call_output", "call_id": "call_1", "output": "22C"},
                 {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Sunny."}]},
                 {"role": "user", "content": "Thanks"}]
        messages = [{"role": "system", "content": "Use tools."},
                    {"role": "user", "content": "Weather in Paris?"},
                    {"role": "assistant", "content": None, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
                    {"role": "assistant", "content": "Sunny."},
                    {"role": "user", "content": "Thanks"}]
        r = self.respond(input=items, max_output_tokens=6, temperature=0)
        self.assert_same_turn(r, self.chat(messages=messages, max_tokens=6, temperature=0))

    def test_function_tools_reach_the_prompt_unless_tool_choice_is_none(self):
        # The tiny test tokenizer spends about a token per character of its 256-token context: keep tools short.
        flat = [{"type": "function", "name": "get_weather", "description": "Now", "parameters": {"type": "object"}}]
        nested = [{"type": "function", "function": {"name": "get_weather", "description": "Now",
                                                    "parameters": {"type": "object"}}}]
        hi = [{"role": "user", "content": "Hi"}]
        with_tools = self.respond(input="Hi", tools=flat, max_output_tokens=2, temperature=0)
        self.assert_same_turn(with_tools, self.chat(messages=hi, tools=nested, max_tokens=2, temperature=0))
        plain = self.chat(messages=hi, max_tokens=2, temperature=0)
        self.assertGreater(with_tools["usage"]["input_tokens"], plain["usage"]["prompt_tokens"] + 10)
        none = self.respond(input="Hi", tools=flat, tool_choice="none", max_output_tokens=2, temperature=0)
        self.assert_same_turn(none, plain)
        self.assertEqual((none["tool_choice"], none["tools"][0]["name"]), ("none", "get_weather"))
        self.assertEqual(with_tools["tools"], [{**flat[0], "strict": None}])

    def test_settings_are_echoed(self):
        r = self.respond(input=HI, instructions="Be brief.", max_output_tokens=3, temperature=0.5, top_p=0.9,
                         metadata={"run": "7"}, user="u-1", store=True, parallel_tool_calls=False,
                         reasoning={"effort": "low"}, text={"format": {"type": "text"}, "verbosity": "low"})
        expected = {"instructions": "Be brief.", "max_output_tokens": 3, "temperature": 0.5, "top_p": 0.9,
                    "metadata": {"run": "7"}, "user": "u-1", "store": False, "parallel_tool_calls": False,
                    "reasoning": {"effort": "low", "summary": None}, "tool_choice": "auto", "tools": [],
                    "text": {"format": {"type": "text"}, "verbosity": "low"}, "previous_response_id": None,
                    "truncation": "disabled", "error": None}
        self.assertEqual({k: r[k] for k in expected}, expected)

    def check_events(self, events):
        """Every event's name is its type, sequence numbers count from 0, and
        items and parts open and close in order. Returns the final response."""
        self.assertEqual([e[0] for e in events], [e[1]["type"] for e in events])
        self.assertEqual([e[1]["sequence_number"] for e in events], list(range(len(events))))
        self.assertEqual([e[0] for e in events[:2]], ["response.created", "response.in_progress"])
        self.assertEqual(events[0][1]["response"]["status"], "in_progress")
        self.assertEqual(events[0][1]["response"]["output"], [])
        names = [e[0] for e in events[2:-1]]
        self.assertEqual(names.count("response.output_item.added"), names.count("response.output_item.done"))
        self.assertEqual(names.count("response.content_part.added"), names.count("response.content_part.done"))
        self.assertIn(events[-1][0], ("response.completed", "response.incomplete"))
        return events[-1][1]["response"]

    def test_stream_assembles_to_the_whole_response(self):
        base = self.respond(input=HI, max_output_tokens=16, temperature=0, ignore_eos=True)["output_text"]
        cut = len(base) // 2
        stop = base[cut:cut + 2]
        for body, status in ((dict(max_output_tokens=5), "incomplete"), (dict(max_output_tokens=16, stop=[stop]),
                                                                         "completed")):
            body = dict(input=HI, temperature=0, ignore_eos=True, **body)
            whole = self.respond(**body)
            self.assertEqual(whole["status"], status)
            st, events = sse_events(self.s, body)
            self.assertEqual(st, 200, events)
            final = self.check_events(events)
            self.assertEqual(without_ids(final), without_ids(whole))
            deltas = [e[1] for e in events if e[0] == "response.output_text.delta"]
            self.assertEqual("".join(d["delta"] for d in deltas), whole["output_text"])
            item_id = final["output"][0]["id"]
            self.assertTrue(all(d["item_id"] == item_id and d["output_index"] == 0 for d in deltas))
            [done] = [e[1] for e in events if e[0] == "response.output_text.done"]
            self.assertEqual(done["text"], whole["output_text"])
        self.assertEqual(whole["output_text"], base[:base.index(stop)])

    def test_incomplete_at_max_output_tokens(self):
        r = self.respond(input=HI, max_output_tokens=2, temperature=0, ignore_eos=True)
        self.assertEqual((r["status"], r["incomplete_details"]), ("incomplete", {"reason": "max_output_tokens"}))
        self.assertEqual(r["output"][0]["status"], "incomplete")
        self.assertIsNone(r["completed_at"])
        self.assertEqual(r["usage"]["output_tokens"], 2)
        st, events = sse_events(self.s, dict(input=HI, max_output_tokens=2, temperature=0, ignore_eos=True))
        self.assertEqual(events[-1][0], "response.incomplete")

    def test_bad_requests_name_the_field(self):
        user = {"role": "user", "content": "hi"}
        cases = [({}, "input"),
                 ({"input": 5}, "input"),
                 ({"input": []}, "input"),
                 ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
                 ({"input": [user, user, {"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
                  "input[2].content[0].type"),
                 ({"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]}, "input[0].call_id"),
                 ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
                 ({"input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
                 ({"input": "x", "tools": [{"type": "function", "function": {"name": "f"}}]}, "tools[0].name"),
                 ({"input": "x", "tool_choice": "required"}, "tool_choice"),
                 ({"input": "x", "tool_choice": {"type": "function", "name": "f"}}, "tool_choice"),
                 ({"input": "x", "text": {"format": {"type": "json_schema", "name": "o", "strict": True, "schema": {
                     "type": "object", "properties": {"a": {"type": "string", "format": "date"}}, "required": ["a"],
                     "additionalProperties": False}}}}, "text.format"),
                 ({"input": "x", "text": {"format": {"type": "json_schema", "name": "o"}}}, "text.format.schema"),
                 ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
                 ({"input": "x", "background": True}, "background"),
                 ({"input": "x", "max_output_tokens": 0}, "max_output_tokens"),
                 ({"input": "x", "temperature": -1}, "temperature"),
                 ({"input": "x", "logit_bias": {"384": 5}}, "logit_bias"),
                 ({"input": "x", "metadata": {"k": 1}}, "metadata"),
                 ({"input": "x " * 2000}, "input")]
        for body, param in cases:
            for stream in (False, True):
                with self.subTest(body=json.dumps(body)[:80], stream=stream):
                    st, err, _ = self.s.post("/v1/responses", {**body, "stream": stream})
                    self.assertEqual(st, 400, err)
                    self.assertEqual(set(err["error"]), {"message", "type", "param", "code"})
                    self.assertEqual((err["error"]["type"], err["error"]["param"]), ("invalid_request_error", param))
        st, err, _ = self.s.post("/v1/responses", {"input": "x " * 2000})
        self.assertEqual(err["error"]["code"], "context_length_exceeded")
        st, err, _ = self.s.post("/v1/responses", {"input": "x", "model": "gpt-4o"})
        self.assertEqual((st, err["error"]["code"], err["error"]["param"]), (404, "model_not_found", "model"))
        st, err, _ = self.s.post("/v1/responses", "{not json")
        self.assertEqual(st, 400)
        self.assertTrue(self.s.healthy())
        self.assertGreaterEqual(self.s.metrics()['dsv3_requests_total{endpoint="/v1/responses",code="400"}'],
                                2 * len(cases))

    def test_nothing_is_stored(self):
        rid = self.respond(input=HI, max_output_tokens=1)["id"]
        for method in ("GET", "DELETE"):
            st, err, _ = self.s.request(method, "/v1/responses/" + rid)
            self.assertEqual(st, 404, err)
            self.assertIn("not stored", err["error"]["message"])
        st, err, _ = self.s.request("POST", "/v1/responses/%s/cancel" % rid, {})
        self.assertEqual(st, 404)
        st, err, _ = self.s.get("/v1/responses")
        self.assertEqual(st, 405)

    def test_a_client_leaving_a_stream_cancels_it(self):
        seen = []

        def first_delta(event):
            seen.append(event[0])
            return event[0] != "response.output_text.delta"

        st, _ = sse_events(self.s, dict(input=HI, max_output_tokens=200, ignore_eos=True), on_event=first_delta)
        self.assertEqual((st, seen[-1]), (200, "response.output_text.delta"))
        self.s.wait_idle(timeout=10)
        self.assertTrue(self.s.healthy())
        self.assertGreater(self.s.metrics()['dsv3_requests_total{endpoint="/v1/responses",code="200"}'], 0)


class Failed(ServerTest):
    """A generation that cannot complete (here: past --request-timeout) is a
    503 whole, and streamed ends with an `error` event then response.failed.
    The timeout is 5 ms: the tiny model decodes ~11,600 tok/s on a 2-core
    machine, so 200 tokens took 17 ms and a 20 ms timeout sometimes never
    fired (seen in a fresh-clone CI run)."""

    @classmethod
    def setUpClass(cls):
        cls.s = Server(chat_model(), "-q", "--request-timeout", "0.005", "--parallel", "1")

    def test_timeout(self):
        body = dict(input=HI, max_output_tokens=200, ignore_eos=True)
        st, out, _ = self.s.post("/v1/responses", body)
        self.assertEqual((st, out["error"]["code"]), (503, "timeout"))
        st, events = sse_events(self.s, body)
        self.assertEqual(st, 200)
        self.assertEqual([e[1]["sequence_number"] for e in events], list(range(len(events))))
        (error_name, error), (failed_name, failed) = events[-2:]
        self.assertEqual((error_name, error["code"], error["param"]), ("error", "timeout", None))
        self.assertEqual(failed_name, "response.failed")
        r = failed["response"]
        self.assertEqual((r["status"], r["error"]["code"]), ("failed", "server_error"))
        self.assertIn("timeout", r["error"]["message"])
        # The item open at the timeout ends incomplete; one finished before it
        # (a reasoning item the model closed within the 5 ms) stays completed.
        statuses = [item["status"] for item in r["output"]]
        self.assertTrue(not statuses or (statuses[-1] == "incomplete" and
                                         all(s == "completed" for s in statuses[:-1])), statuses)
        self.s.wait_idle()
        self.assertTrue(self.s.healthy())


class TokenIdModel(ServerTest):
    """A checkpoint without a tokenizer has no chat format: a 400 naming input."""

    @classmethod
    def setUpClass(cls):
        cls.s = Server(os.path.join(GOLDEN, "v3_tiny_bf16"), "-q")

    def test_refused_with_a_400(self):
        for stream in (False, True):
            st, err, _ = self.s.post("/v1/responses", {"input": "hi", "stream": stream})
            self.assertEqual((st, err["error"]["param"]), (400, "input"), err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
