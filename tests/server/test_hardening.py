"""Hostile requests against a real `dsv3 serve` with a chat model: JSON nested
100,000 deep in the three places that used to crash the server (it overflowed
the stack re-serialising them), framing that httplib would misread (a negative
Content-Length got 413 and a read of 2^64 bytes), compressed and unbounded
bodies, oversized heads, and keep-alive and pipelining through the connection
gate. Each refusal is an OpenAI-style JSON error and the server stays healthy."""
import json
import os
import socket
import time
import unittest

from harness import OUT, Server, ServerTest, chat_model, long_chat_model

DEPTH = 100_000


def deep(depth=DEPTH):
    """A JSON array nested `depth` deep (200 KB at 100,000): built as text,
    since Python's own json module would recurse too."""
    return "[" * depth + "]" * depth


def chat(messages, **extra):
    return {"messages": messages, "max_tokens": 1, **extra}


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes on a fresh connection and reads until the server closes or
    `timeout`; returns what came back."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    reply = b""
    try:
        while True:
            more = s.recv(65536)
            if not more:
                break
            reply += more
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return reply


def split_response(reply):
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head.decode("latin-1"), body


class Hardening(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(long_chat_model(), "-q", "--parallel", "2", "--ctx-size", "4096", "--max-body", "1048576",
                       "--header-timeout", "5")

    def tearDown(self):
        self.assertTrue(self.s.healthy())

    def post_text(self, text):
        return self.s.post("/v1/chat/completions", text.encode())

    def expect_nesting_error(self, text):
        self.assertGreater(len(text), 190_000)
        st, out, _ = self.post_text(text)
        self.assertEqual(st, 400, out)
        err = out["error"]
        self.assertIn("nested deeper than 128", err["message"])
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertIsNone(err["param"])

    def test_deep_tool_parameters(self):
        self.expect_nesting_error(
            '{"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", '
            '"function": {"name": "f", "parameters": {"type": "object", "properties": {"x": %s}}}}]}' % deep())

    def test_deep_tool_call_arguments(self):
        self.expect_nesting_error(
            '{"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": null, '
            '"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": %s}}}]}, '
            '{"role": "tool", "tool_call_id": "c1", "content": "ok"}]}' % deep())

    def test_deep_content_part_field(self):
        self.expect_nesting_error(
            '{"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", '
            '"extra": %s}]}]}' % deep())

    def test_moderately_nested_tool_parameters_still_work(self):
        # A schema nested about 100 levels (the whole body: 104) is a valid request.
        schema = '{"type": "object"}'
        for _ in range(48):
            schema = '{"type": "object", "properties": {"p": %s}}' % schema
        body = ('{"max_tokens": 1, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", '
                '"function": {"name": "f", "parameters": %s}}]}' % schema)
        st, out, _ = self.post_text(body)
        self.assertEqual(st, 200, out)
        self.assertGreater(out["usage"]["prompt_tokens"], 1000)  # the schema went into the prompt
        st, out, _ = self.s.post("/v1/chat/completions", chat([{"role": "user", "content": "hi"}],
                                                              tools=[{"type": "function", "function": {
                                                                  "name": "f", "parameters": {"type": "object"}}}]))
        self.assertEqual(st, 200, out)

    def test_negative_content_length_is_400(self):
        for length in (b"-5", b"+5", b"0x10", b"5, 5", b"abc"):
            with self.subTest(length=length):
                reply = raw_exchange(self.s.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                     + length + b"\r\n\r\n{}")
                status, head, body = split_response(reply)
                self.assertEqual(status, 400, reply[:200])
                self.assertIn("Content-Length", json.loads(body)["error"]["message"])

    def test_framing_refusals(self):
        cases = [
            (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
            (b"Content-Length: 5\r\nContent-Length: 6\r\n", 400),
            (b"Transfer-Encoding: gzip\r\n", 501),
            (b"Content-Encoding: gzip\r\nContent-Length: 5\r\n", 415),  # would inflate past --max-body
            (b"Content-Length: 99999999\r\n", 413),  # refused before the body is read
            (b"", 411),
        ]
        for headers, want in cases:
            with self.subTest(headers=headers):
                t0 = time.monotonic()
                status, head, body = split_response(raw_exchange(
                    self.s.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"))
                self.assertEqual(status, want, head)
                self.assertIn("error", json.loads(body))
                self.assertLess(time.monotonic() - t0, 5)

    def test_oversized_head_and_chunked_bodies(self):
        status, _, body = split_response(raw_exchange(
            self.s.port, b"GET /health HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70000 + b"\r\n\r\n"))
        self.assertEqual(status, 431)
        # A chunked body is bounded while it is read (it declares no size)...
        chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
        status, _, body = split_response(raw_exchange(
            self.s.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunk * 20 + b"0\r\n\r\n"))
        self.assertEqual(status, 413)
        # ...and a small one is served.
        data = json.dumps({"prompt": [1, 2], "max_tokens": 2}).encode()
        status, _, body = split_response(raw_exchange(
            self.s.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(data), data)))
        self.assertEqual(status, 200, body)

    def test_expect_100_continue(self):
        # The client sends its body only after "100 Continue" (curl does for large
        # bodies): the gate must not wait for that body itself.
        data = json.dumps({"prompt": [1, 2], "max_tokens": 2}).encode()
        s = socket.create_connection(("127.0.0.1", self.s.port), timeout=10)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(data))
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 100"))
        s.sendall(data)
        reply = b""
        while True:
            more = s.recv(65536)
            if not more:
                break
            reply += more
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:200])

    def test_keep_alive_and_pipelining(self):
        c = self.s.conn()
        for _ in range(5):
            c.request("POST", "/v1/completions", json.dumps({"prompt": [1, 2], "max_tokens": 2}))
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            c.request("GET", "/health")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
        c.close()
        # Three requests in one packet are answered in order on the one connection.
        data = json.dumps({"prompt": [4], "max_tokens": 1}).encode()
        reply = raw_exchange(self.s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                             b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                             b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (len(data), data))
        self.assertEqual(reply.count(b"HTTP/1.1 200 OK"), 3, reply)
        self.assertIn(b'"text_completion"', reply)
        self.assertIn(b'"object":"list"', reply.replace(b" ", b""))

    def test_unauthorized_body_is_drained_not_reset(self):
        s = Server(chat_model(), "-q", "--api-key", "k")
        try:
            body = json.dumps({"prompt": [1] * 20000}).encode()  # unread by the 401, still answered cleanly
            for _ in range(3):
                st, out, _ = s.post("/v1/completions", body)
                self.assertEqual(st, 401)
                self.assertEqual(out["error"]["code"], "invalid_api_key")
        finally:
            self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
