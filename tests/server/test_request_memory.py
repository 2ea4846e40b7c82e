"""Memory held by requests, answered or refused. Ten 3.4 MB chat bodies of
100,000 messages (each answered 400: the golden model has no chat format) used
to take `dsv3 serve` from 60 MB to 1 GB resident for good, and thirty at once
to 3.3 GB. Now a request's memory is released when it is answered, and
requests in flight are charged against --max-request-memory: past it they get
503 with Retry-After before their body is read."""
import json
import os
import time
import unittest

from attack import RssSampler, big_chat_body, burst, post_raw, vm_rss
from harness import GOLDEN, Server, ServerTest, sanitized

MODEL = os.path.join(GOLDEN, "v3_tiny_bf16")
LIMIT = 256 << 20
MiB = 1 << 20
# Under AddressSanitizer freed memory stays in its quarantine: statuses are
# still checked, resident memory is not.
CHECK_RSS = not sanitized()


class RequestMemory(ServerTest):
    @classmethod
    def setUpClass(cls):
        cls.s = Server(MODEL, "-q", "--max-request-memory", str(LIMIT))
        for _ in range(3):
            cls.s.post("/v1/completions", {"prompt": [1, 2, 3], "max_tokens": 4})
        time.sleep(2.5)  # the server trims freed memory once idle
        cls.idle = vm_rss(cls.s.proc.pid)
        cls.body = big_chat_body()

    def settled(self):
        time.sleep(5)
        return vm_rss(self.s.proc.pid)

    def test_sequential_rejected_bodies_give_their_memory_back(self):
        self.assertGreater(len(self.body), 3_300_000)
        with RssSampler(self.s.proc.pid) as rss:
            for _ in range(10):
                status, _, data = post_raw(self.s.port, "/v1/chat/completions", self.body)
                self.assertEqual(status, 400, data[:200])
                self.assertIn("error", json.loads(data))
        after = self.settled()
        print("sequential: idle %.1f MiB, peak %.1f MiB, 5 s after %.1f MiB" %
              (self.idle / MiB, rss.peak / MiB, after / MiB))
        if CHECK_RSS:
            self.assertLess(rss.peak, self.idle + 200 * MiB)  # about one request's worth, not ten
            self.assertLess(after, 1.5 * self.idle)
        self.assertTrue(self.s.healthy())

    def test_concurrent_bodies_are_bounded_then_refused_with_retry_after(self):
        before = self.s.metrics()["dsv3_http_requests_over_memory_total"]
        with RssSampler(self.s.proc.pid) as rss:
            results = burst(self.s.port, "/v1/chat/completions", self.body, 30)
        statuses = sorted(r[0] for r in results)
        self.assertTrue(set(statuses) <= {400, 503}, statuses)
        busy = [r for r in results if r[0] == 503]
        self.assertTrue(busy, statuses)  # 30 x 3.4 MB x 12 is far past 256 MiB
        for _, headers, data in busy:
            self.assertEqual(headers.get("Retry-After"), "1")
            err = json.loads(data)["error"]
            self.assertEqual((err["type"], err["code"]), ("server_error", "server_busy"))
            self.assertIn("--max-request-memory", err["message"])
        after = self.settled()
        print("30 concurrent: %s; idle %.1f MiB, peak %.1f MiB, 5 s after %.1f MiB" %
              ({s: statuses.count(s) for s in set(statuses)}, self.idle / MiB, rss.peak / MiB, after / MiB))
        if CHECK_RSS:
            self.assertLess(rss.peak, self.idle + LIMIT + 64 * MiB)
            self.assertLess(after, 1.5 * self.idle)
        m = self.s.metrics()
        self.assertEqual(m["dsv3_http_requests_over_memory_total"] - before, len(busy))
        self.assertLess(m["dsv3_http_request_memory_bytes"], 4096)  # only the /metrics request itself
        self.assertTrue(self.s.healthy())


if __name__ == "__main__":
    unittest.main(verbosity=2)
