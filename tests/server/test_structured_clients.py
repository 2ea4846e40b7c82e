"""Structured outputs through stock client libraries (issue 19): starts a
chat server (the golden v3_tiny_bf16 weights with the test tokenizer, at a
4096-token context so tool definitions fit) and runs
structured_clients_test.mjs against it: the official `openai` npm client
(chat.completions.parse/stream with zodResponseFormat and forced zodFunction
tools, responses.parse/create/stream with zodTextFormat or a json_schema, a
forced zodResponsesFunction), the Vercel AI SDK's default provider
(generateObject, streamObject, Output.object, a forced toolChoice,
streamText) and LangChain's ChatOpenAI (withStructuredOutput in its methods,
bindTools with a forced tool_choice, on chat and on the Responses API), each
returning a parsed object that its zod schema accepts. Known gaps are
printed (DSV3_STRICT_CLIENT_GAPS=1 makes them fail). Exits 77 (ctest:
skipped) when node or one of the packages in tests/node is missing
(scripts/setup-node.sh installs them)."""
import os
import shutil
import subprocess
import sys

from harness import Server, long_chat_model

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.environ.get("DSV3_NODE_DIR", os.path.join(HERE, "..", "node"))
PACKAGES = ("openai", "zod", "ajv", "ai", "@ai-sdk/openai", "@langchain/openai", "@langchain/core")


def main():
    node = shutil.which("node")
    if not node:
        print("SKIPPED: node is not installed")
        return 77
    missing = [p for p in PACKAGES if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", p))]
    if missing:
        print("SKIPPED: %s missing from %s/node_modules: run scripts/setup-node.sh" % (", ".join(missing), NODE_DIR))
        return 77
    model = long_chat_model()
    server, rc = Server(model, "-q", "--parallel", "2"), 1
    try:
        run = subprocess.run([node, os.path.join(HERE, "structured_clients_test.mjs"),
                              "http://127.0.0.1:%d/v1" % server.port, model], timeout=240,
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
