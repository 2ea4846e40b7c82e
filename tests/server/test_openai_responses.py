"""Stock Responses API clients against `dsv3 serve` (issue 19): starts a chat
server (the golden v3_tiny_bf16 weights with the test tokenizer, at a 4096-
token context so a tool round trip's prompt fits) and runs
openai_responses_test.mjs against it: the official `openai` npm client's
responses.create (whole and streamed), responses.stream, a function-tool
round trip and refusals as typed errors, and the Vercel AI SDK's default
provider (generateText, streamText, a tool round trip) when tests/node has
it. Exits 77 (ctest: skipped) when node or tests/node/node_modules/openai is
missing (scripts/setup-node.sh installs it)."""
import sys

from harness import Server, long_chat_model, run_node_test

if __name__ == "__main__":
    sys.exit(run_node_test("openai_responses_test.mjs", lambda: [Server(long_chat_model(), "-q", "--parallel", "4")]))
