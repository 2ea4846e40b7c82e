"""Slow and idle clients against a real `dsv3 serve`: /health and well-behaved
clients keep being served while sockets trickle header lines (each line is
progress, so only a total deadline stops them), while one client address holds
more connections than its cap, while idle sockets fill the server-wide cap, and
while bodies stall or trickle in. Before the connection gate, 95 such sockets held 95
of the 88 HTTP threads and /health went unanswered for a minute."""
import json
import os
import socket
import time
import unittest

from attack import HealthPoller, Slowloris
from harness import GOLDEN, Server, ServerTest

MODEL = os.path.join(GOLDEN, "v3_tiny_bf16")
HEADER_TIMEOUT = 3


def served_from(source, port, body):
    """POSTs a small completion from `source` (a 127.x address); returns the status line."""
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
              % len(data) + data)
    reply = b""
    while not reply.endswith(b"}"):
        more = s.recv(65536)
        if not more:
            break
        reply += more
    s.close()
    return reply.split(b"\r\n", 1)[0]


class Slowloris_(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(MODEL, "-q", "--parallel", "2", "--header-timeout", str(HEADER_TIMEOUT),
                       "--max-connections-per-ip", "32", "--max-connections", "120", "--body-timeout", "3")

    def tearDown(self):
        self.assertTrue(self.s.healthy())

    def test_trickled_headers_do_not_starve_health(self):
        # The attack, faster: 95 sockets each sending a header line every second.
        before = self.s.metrics()
        with Slowloris(self.s.port, 95, interval=1.0, duration=HEADER_TIMEOUT + 4) as attack, \
                HealthPoller(self.s.port, interval=0.1) as health:
            time.sleep(1.0)
            self.assertEqual(served_from("127.0.0.1", self.s.port, {"prompt": [1, 2], "max_tokens": 2}),
                             b"HTTP/1.1 200 OK")
            attack.wait()
        self.assertEqual(health.failures, [])
        self.assertGreater(len(health.latencies), 40)
        self.assertLess(health.max_latency, 1.0, health.latencies)
        # Every socket was closed by the server: evicted at once (32 per address), or at the head deadline.
        self.assertEqual(attack.open_at_end, 0)
        self.assertEqual(len(attack.lifetimes), 95)
        self.assertLess(max(attack.lifetimes), HEADER_TIMEOUT + 2.5)
        m = self.s.metrics()
        closed = sum(m['dsv3_http_connections_closed_total{reason="%s"}' % r] -
                     before['dsv3_http_connections_closed_total{reason="%s"}' % r] for r in ("header_timeout", "evicted"))
        self.assertGreaterEqual(closed, 95)

    def test_an_address_over_its_cap_evicts_only_its_own_waiting_sockets(self):
        # 60 slow sockets from 127.0.0.2 (cap 32): that address still gets a request
        # through (its oldest slow socket makes room), and 127.0.0.1 is untouched.
        with Slowloris(self.s.port, 60, interval=0.5, duration=HEADER_TIMEOUT + 2, source="127.0.0.2",
                       reconnect=True, max_connects=400) as attack, HealthPoller(self.s.port) as health:
            time.sleep(1.0)
            self.assertEqual(served_from("127.0.0.2", self.s.port, {"prompt": [3], "max_tokens": 2}),
                             b"HTTP/1.1 200 OK")
            self.assertLessEqual(self.s.metrics()["dsv3_http_connections"], 32 + 4)
        self.assertEqual(health.failures, [])
        self.assertLess(health.max_latency, 1.0, health.latencies)
        self.assertGreater(attack.connects, 60)  # evicted sockets were replaced, and evicted again

    def test_idle_sockets_at_the_total_cap(self):
        # 150 silent sockets from five addresses (under each address's cap) pass the
        # server-wide cap of 120: the oldest silent ones are closed to let new clients in.
        socks = []
        try:
            for i in range(150):
                s = socket.socket()
                s.bind(("127.0.0.%d" % (3 + i % 5), 0))
                s.connect(("127.0.0.1", self.s.port))
                socks.append(s)
            t0 = time.monotonic()
            self.assertTrue(self.s.healthy())
            self.assertLess(time.monotonic() - t0, 1.0)
            self.assertLessEqual(self.s.metrics()["dsv3_http_connections"], 120)
        finally:
            for s in socks:
                s.close()

    def test_unfinished_bodies_hold_no_worker(self):
        # Ten uploads stuck half-way on a server with two generation workers: the
        # gate reads declared-length bodies itself, so a complete request is served at once.
        s = Server(MODEL, "-q", "--http-threads", "2")
        socks = []
        try:
            for _ in range(10):
                c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
                c.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
                socks.append(c)
            time.sleep(0.5)
            t0 = time.monotonic()
            st, out, _ = s.post("/v1/completions", {"prompt": [1, 2], "max_tokens": 2}, timeout=30)
            self.assertEqual(st, 200, out)
            self.assertLess(time.monotonic() - t0, 3.0)
        finally:
            for c in socks:
                c.close()
            self.assertEqual(s.stop(), 0)

    def test_trickled_body_hits_the_body_deadline(self):
        # Full headers, then one body byte every 0.3 s: progress every time, but
        # the body must be complete 3 s (--body-timeout) after the headers.
        s = socket.socket()
        s.settimeout(10)
        s.connect(("127.0.0.1", self.s.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        t0, reply = time.monotonic(), b""
        s.setblocking(False)
        while time.monotonic() - t0 < 8 and not reply:
            try:
                s.send(b" ")
            except OSError:
                break
            time.sleep(0.3)
            try:
                reply = s.recv(65536)
            except BlockingIOError:
                pass
        s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 408"), reply[:80])
        self.assertIn(b"body-timeout", reply)
        self.assertLess(time.monotonic() - t0, 3 + 1.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
