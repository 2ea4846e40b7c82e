"""The official `openai` npm client against `dsv3 serve` (issue 21): starts a
token-id server (the golden v3_tiny_bf16) and a chat server (the same weights
with the test tokenizer) and runs openai_client_test.mjs against them, which
checks n > 1 choices streamed and not, penalties and logit_bias passed through
and bad values as the client's BadRequestError naming the parameter. Exits 77
(ctest: skipped) when node or tests/node/node_modules/openai is missing
(scripts/setup-node.sh installs it)."""
import os
import sys

from harness import GOLDEN, Server, chat_model, run_node_test

def servers():
    out = [Server(os.path.join(GOLDEN, "v3_tiny_bf16"), "-q", "--parallel", "4")]
    try:
        out.append(Server(chat_model(), "-q", "--parallel", "4"))
    except Exception:
        out[0].stop()
        raise
    return out


if __name__ == "__main__":
    sys.exit(run_node_test("openai_client_test.mjs", servers))
