"""Stock Responses API clients against `dsv3 serve` (issue 19): starts a chat
server (the golden v3_tiny_bf16 weights with the test tokenizer, at a 4096-
token context so a tool round trip's prompt fits) and runs
openai_responses_test.mjs against it: the official `openai` npm client's
responses.create (whole and streamed), responses.stream, a function-tool
round trip and refusals as typed errors, and the Vercel AI SDK's default
provider (generateText, streamText, a tool round trip) when tests/node has
it. Exits 77 (ctest: skipped) when node or tests/node/node_modules/openai is
missing (scripts/setup-node.sh installs it)."""
import os
import shutil
import subprocess
import sys

from harness import Server
from test_hardening import long_chat_model

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.environ.get("DSV3_NODE_DIR", os.path.join(HERE, "..", "node"))


def main():
    node = shutil.which("node")
    if not node:
        print("SKIPPED: node is not installed")
        return 77
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "openai")):
        print("SKIPPED: %s/node_modules/openai is missing: run scripts/setup-node.sh" % NODE_DIR)
        return 77
    server, rc = Server(long_chat_model(), "-q", "--parallel", "4"), 1
    try:
        run = subprocess.run([node, os.path.join(HERE, "openai_responses_test.mjs"),
                              "http://127.0.0.1:%d/v1" % server.port], timeout=240,
                             env={**os.environ, "DSV3_NODE_DIR": NODE_DIR})
        rc = run.returncode
    finally:
        status = server.stop()
        if status != 0:
            print("server exit status %d\n%s" % (status, "".join(server.stderr_lines)))
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
