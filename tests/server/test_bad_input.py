"""Bad input against a real `dsv3 serve`: malformed JSON, wrong types, huge
numbers, negative or zero max_tokens, invalid UTF-8, oversized bodies,
unknown models/endpoints/methods, a full queue, abrupt disconnects and slow
clients. Each request gets the right status with an OpenAI-style JSON error
(or its connection is dropped cleanly), and after each the server is healthy
and has no sequence left running."""
import json
import os
import socket
import threading
import time
import unittest

from harness import GOLDEN, Server, ServerTest, completion_text, raw_socket

MODEL = os.path.join(GOLDEN, "v3_tiny_bf16")


class BadInput(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(MODEL, "--parallel", "2", "--max-queue", "4", "--idle-timeout", "1", "--max-body", "65536")

    def tearDown(self):
        self.assertTrue(self.s.healthy())
        self.s.wait_idle()

    def expect_error(self, status, body, path="/v1/completions", param=None, contains=None, code=None):
        st, out, headers = self.s.post(path, body)
        self.assertEqual(st, status, out)
        self.assertIn("application/json", headers.get("Content-Type", ""))
        err = out["error"]
        self.assertIsInstance(err["message"], str)
        self.assertIn("type", err)
        if param is not None:
            self.assertEqual(err["param"], param, err)
        if contains is not None:
            self.assertIn(contains, err["message"])
        if code is not None:
            self.assertEqual(err["code"], code)
        return err

    def test_malformed_json(self):
        for body in (b"", b"{", b'{"prompt": [1, 2', b'{"prompt": [1]} trailing', b"{'prompt': [1]}",
                     b'{"prompt": [1], "max_tokens": NaN}', b'{"prompt": [1],}', b"\x00\x01\x02", b"[1, 2, 3]",
                     b'"just a string"', b"42", b"null"):
            self.expect_error(400, body)
            self.expect_error(400, body, path="/v1/chat/completions")

    def test_wrong_types(self):
        base = {"prompt": [1, 2, 3], "max_tokens": 4}
        cases = [("prompt", 5), ("prompt", {"a": 1}), ("prompt", [1, "x"]), ("prompt", [-1]), ("prompt", [1.5]),
                 ("prompt", []), ("prompt", ""), ("prompt", [[1], [2]]), ("prompt", True),
                 ("max_tokens", "10"), ("max_tokens", 2.5), ("max_tokens", [4]), ("temperature", "hot"),
                 ("temperature", 3), ("temperature", -0.5), ("top_p", 0), ("top_p", 1.5), ("top_k", "x"),
                 ("min_p", 2), ("stream", "yes"), ("stop", 5), ("stop", [1]), ("logprobs", True),
                 ("logprobs", 21), ("logprobs", -1), ("n", 17), ("n", 0), ("seed", "x"), ("seed", 1.5), ("model", 5),
                 ("echo", True), ("best_of", 3), ("presence_penalty", 2.5), ("frequency_penalty", "x"),
                 ("repetition_penalty", 0), ("logit_bias", {"1": 500}), ("logit_bias", {"x": 1}), ("logit_bias", 5),
                 ("stream_options", {"include_usage": True}), ("stop_token_ids", [-3]), ("ignore_eos", 1)]
        for field, value in cases:
            with self.subTest(field=field, value=value):
                self.expect_error(400, {**base, field: value}, param="stream_options" if field == "stream_options"
                                  else field)
        chat = [("messages", "hi"), ("messages", []), ("messages", [{"role": "bot", "content": "x"}]),
                ("messages", [{"content": "x"}]), ("messages", [5]), ("messages", [{"role": "user", "content": 5}]),
                ("top_logprobs", 3), ("response_format", {"type": "json_object"}), ("tools", {"a": 1})]
        for field, value in chat:
            with self.subTest(field=field, value=value):
                body = {"messages": [{"role": "user", "content": "hi"}], **{field: value}}
                self.expect_error(400, body, path="/v1/chat/completions")

    def test_huge_numbers(self):
        for raw in (b'{"prompt": [1], "max_tokens": 1e308}', b'{"prompt": [1], "max_tokens": 1e400}',
                    b'{"prompt": [1], "max_tokens": 99999999999999999999999999}',
                    b'{"prompt": [1], "max_tokens": 9223372036854775807}',
                    b'{"prompt": [1], "max_tokens": 18446744073709551615}',
                    b'{"prompt": [2147483648]}', b'{"prompt": [1], "top_k": 1099511627776}',
                    b'{"prompt": [1], "seed": 1e30}', b'{"prompt": [1], "temperature": 1e999}'):
            with self.subTest(raw=raw):
                self.expect_error(400, raw)
        self.expect_error(400, {"prompt": [1, 1000000]}, contains="out of range")
        self.expect_error(400, {"prompt": [1], "max_tokens": 2147483647}, code="context_length_exceeded")
        self.expect_error(400, {"prompt": [5] * 300, "max_tokens": 1}, code="context_length_exceeded")
        # Large but legal values are fine.
        st, out, _ = self.s.post("/v1/completions", {"prompt": [1], "max_tokens": 3, "seed": 18446744073709551615,
                                                     "top_k": 2147483647})
        self.assertEqual(st, 200, out)

    def test_negative_and_zero_max_tokens(self):
        for v in (-1, -2147483648, 0):
            self.expect_error(400, {"prompt": [1, 2], "max_tokens": v}, param="max_tokens")
            self.expect_error(400, {"prompt": [1, 2], "max_tokens": v, "stream": True}, param="max_tokens")
        self.expect_error(400, {"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -5},
                          path="/v1/chat/completions", param="max_completion_tokens")

    def test_invalid_utf8(self):
        for raw in (b'{"prompt": "\xff\xfe"}', b'{"model": "\xc3\x28", "prompt": [1]}',
                    b'{"prompt": [1], "stop": "\xe2\x82"}', b'{"prompt": "\xed\xa0\x80"}',
                    b'{"prompt": "\\ud800"}', b'{"prompt": "a\\uZZZZ"}',
                    b'{"messages": [{"role": "user", "content": "\xf8\x88\x80\x80\x80"}]}'):
            with self.subTest(raw=raw):
                self.expect_error(400, raw)

    def test_oversized_body_unknown_model_endpoint_method(self):
        big = json.dumps({"prompt": [1] * 40000})
        self.expect_error(413, big.encode())
        self.expect_error(404, {"prompt": [1], "model": "gpt-4"}, param="model", code="model_not_found")
        st, out, _ = self.s.post("/v1/nothing", {"prompt": [1]})
        self.assertEqual((st, "error" in out), (404, True))
        for method, path in (("GET", "/v1/completions"), ("PUT", "/v1/chat/completions"), ("DELETE", "/health"),
                             ("POST", "/v1/models")):
            st, out, _ = self.s.request(method, path, "{}")
            self.assertEqual((st, "error" in out), (405, True), (method, path))

    def test_garbage_http(self):
        for raw in (b"GARBAGE\r\n\r\n", b"POST /v1/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64):  # a TLS ClientHello
            s = raw_socket(self.s.port)
            s.sendall(raw)
            s.settimeout(5)
            data = s.recv(65536)
            s.close()
            self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4"), data[:80])

    def test_queue_full_gives_429(self):
        s = Server(MODEL, "-q", "--parallel", "1", "--max-queue", "1")
        try:
            statuses, lock = [], threading.Lock()
            barrier = threading.Barrier(3)

            def go():
                barrier.wait()
                st, out, _ = s.post("/v1/completions", {"prompt": [3] * 20, "max_tokens": 230, "ignore_eos": True})
                with lock:
                    statuses.append((st, out["error"]["code"] if st != 200 else None))
            threads = [threading.Thread(target=go) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(sorted(statuses, key=str), [(200, None), (200, None), (429, "queue_full")])
            self.assertTrue(s.healthy())
        finally:
            self.assertEqual(s.stop(), 0)

    def test_abrupt_disconnect_mid_stream_cancels_the_sequence(self):
        before = self.s.metrics()["dsv3_generation_tokens_total"]
        for _ in range(3):
            c = self.s.conn()
            c.request("POST", "/v1/completions", json.dumps({"prompt": [8, 9], "max_tokens": 250, "stream": True,
                                                             "ignore_eos": True}))
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            self.assertTrue(r.readline().startswith(b"data: "))
            c.sock.shutdown(socket.SHUT_RDWR)  # vanish mid-stream
            c.close()
        m = self.s.wait_idle()
        # Each stream was cut off long before its 250 tokens.
        self.assertLess(m["dsv3_generation_tokens_total"] - before, 3 * 250)

    def test_disconnects_at_other_moments(self):
        # Before the body arrives, right after the request, and during a non-streamed answer.
        s = raw_socket(self.s.port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"pro")
        s.close()
        body = json.dumps({"prompt": [1, 2], "max_tokens": 200, "stream": True, "ignore_eos": True}).encode()
        head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
        s = raw_socket(self.s.port)
        s.sendall(head + body)
        s.close()
        body = json.dumps({"prompt": [1, 2], "max_tokens": 100, "ignore_eos": True}).encode()
        s = raw_socket(self.s.port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        s.close()
        self.s.wait_idle()

    def test_idle_keep_alive_connection_is_closed(self):
        s = raw_socket(self.s.port)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(10)
        reply = s.recv(65536)
        self.assertTrue(reply.startswith(b"HTTP/1.1 200"))
        while not reply.endswith(b"}"):  # headers and body may come in separate segments
            more = s.recv(65536)
            self.assertNotEqual(more, b"", reply)
            reply += more
        t0 = time.monotonic()
        self.assertEqual(s.recv(65536), b"")  # closed by the server after --idle-timeout (1 s)
        self.assertLess(time.monotonic() - t0, 5)
        s.close()

    def test_slow_clients(self):
        # A body trickling in (each gap under the idle timeout) is still served.
        body = json.dumps({"prompt": [1, 2, 3], "max_tokens": 2}).encode()
        s = raw_socket(self.s.port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        for i in range(0, len(body), 8):
            s.sendall(body[i:i + 8])
            time.sleep(0.05)
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
        s.close()
        # A client that stops mid-request is dropped after the idle timeout (1 s here).
        s = raw_socket(self.s.port)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"prompt\"")
        t0 = time.monotonic()
        s.settimeout(10)
        data = s.recv(65536)
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4"), data[:80])
        self.assertLess(time.monotonic() - t0, 5)
        s.close()
        # A streaming client that never reads: the server keeps serving others and frees the slot.
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        s.connect(("127.0.0.1", self.s.port))
        body = json.dumps({"prompt": [5, 6], "max_tokens": 240, "stream": True, "logprobs": 20,
                           "ignore_eos": True}).encode()
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        st, out, _ = self.s.post("/v1/completions", {"prompt": [1], "max_tokens": 3})
        self.assertEqual(st, 200)
        self.assertTrue(self.s.healthy())
        self.s.wait_idle(timeout=15)  # finished into the buffers, or dropped by the write timeout
        s.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
