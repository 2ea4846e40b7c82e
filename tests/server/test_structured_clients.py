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
import sys

from harness import Server, long_chat_model, run_node_test

PACKAGES = ("openai", "zod", "ajv", "ai", "@ai-sdk/openai", "@langchain/openai", "@langchain/core")

if __name__ == "__main__":
    sys.exit(run_node_test("structured_clients_test.mjs", lambda: [Server(long_chat_model(), "-q", "--parallel", "2")],
                           PACKAGES, extra_args=[long_chat_model()]))
