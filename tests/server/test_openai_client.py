"""The official `openai` npm client against `dsv3 serve` (issue 21): starts a
token-id server (the golden v3_tiny_bf16) and a chat server (the same weights
with the test tokenizer) and runs openai_client_test.mjs against them, which
checks n > 1 choices streamed and not, penalties and logit_bias passed through
and bad values as the client's BadRequestError naming the parameter. Exits 77
(ctest: skipped) when node or tests/node/node_modules/openai is missing
(scripts/setup-node.sh installs it)."""
import os
import shutil
import subprocess
import sys

from harness import GOLDEN, Server, chat_model

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
    servers, rc = [Server(os.path.join(GOLDEN, "v3_tiny_bf16"), "-q", "--parallel", "4")], 1
    try:
        servers.append(Server(chat_model(), "-q", "--parallel", "4"))
        urls = ["http://127.0.0.1:%d/v1" % s.port for s in servers]
        run = subprocess.run([node, os.path.join(HERE, "openai_client_test.mjs"), *urls], timeout=240,
                             env={**os.environ, "DSV3_NODE_DIR": NODE_DIR})
        rc = run.returncode
    finally:
        for s in servers:
            status = s.stop()
            if status != 0:
                print("server exit status %d\n%s" % (status, "".join(s.stderr_lines)))
                rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
