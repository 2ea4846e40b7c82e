# End-to-end tests of `dsv3 serve` (issue 7): each starts the real server on
# an ephemeral loopback port and talks HTTP to it with Python's standard
# library (tests/server/*.py); the web test drives Debian's chromium through
# chromedriver. Artefacts (the page screenshot) go to build/tests/tmp/server.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(DSV3_SERVER_ENV "DSV3_BIN=$<TARGET_FILE:dsv3>" "DSV3_GOLDEN=${DSV3_GOLDEN_DIR}"
    "DSV3_TEST_OUT=${CMAKE_CURRENT_BINARY_DIR}/tmp/server")
# Hardening (docs/server.md, "Limits"): hostile JSON and framing, slow clients,
# request memory, start-up limits. Sampling (issue 21): penalties, logit_bias, n.
# Responses: POST /v1/responses (issue 19). Forced tool calls come back as
# parsed calls (the markers are the tokenizer's, not spelled byte by byte).
foreach(name api bad_input text web hardening slowloris request_memory startup_limits sampling responses
        forced_tool_calls structured_api)
  add_test(NAME server_${name} COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_${name}.py)
  set_tests_properties(server_${name} PROPERTIES ENVIRONMENT "${DSV3_SERVER_ENV}" TIMEOUT 300)
endforeach()
# /health latency is measured: not next to another test on a two-core machine.
set_tests_properties(server_slowloris PROPERTIES RUN_SERIAL TRUE)
# The load-test script itself, small: zero failed requests, memory back to idle.
add_test(NAME server_load_smoke COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/load_test.py
         --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --clients 1,4 --requests 2 --max-tokens 16 --prompt-len 8 --check)
set_tests_properties(server_load_smoke PROPERTIES ENVIRONMENT "${DSV3_SERVER_ENV}" TIMEOUT 300)
# Its hostile mix, small: slowloris + streams + large refused requests at once;
# /health within 1 s throughout, every stream complete, memory back within 1.5x.
add_test(NAME server_load_attack_smoke COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/load_test.py
         --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --attack --slowloris 60 --streams 4 --big 8 --max-tokens 16
         --prompt-len 8 --attack-seconds 5 --server-args=--header-timeout=2 --check)
set_tests_properties(server_load_attack_smoke PROPERTIES ENVIRONMENT "${DSV3_SERVER_ENV}" TIMEOUT 300 RUN_SERIAL TRUE)

# The official openai npm client (tests/node/node_modules/openai) against the
# server: n choices streamed and not, penalties, logit_bias, 400s. Skipped (77)
# without node or the package (scripts/setup-node.sh).
add_test(NAME server_openai_client COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_openai_client.py)
set_tests_properties(server_openai_client PROPERTIES
                     ENVIRONMENT "${DSV3_SERVER_ENV};DSV3_NODE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/node"
                     TIMEOUT 300 SKIP_RETURN_CODE 77)
# Stock Responses API clients (issue 19): the openai client's responses.create
# and responses.stream, a function-tool round trip, typed refusals; the Vercel
# AI SDK's default provider too when tests/node has it. Skipped (77) as above.
add_test(NAME server_openai_responses
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_openai_responses.py)
set_tests_properties(server_openai_responses PROPERTIES
                     ENVIRONMENT "${DSV3_SERVER_ENV};DSV3_NODE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/node"
                     TIMEOUT 300 SKIP_RETURN_CODE 77)

# Structured outputs through stock clients (issue 19): openai's parse/stream
# helpers with zod, the AI SDK's generateObject/streamText, LangChain's
# withStructuredOutput and bindTools with a forced tool_choice, each returning
# a parsed object. Skipped (77) without node or the packages in tests/node.
add_test(NAME server_structured_clients
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_structured_clients.py)
set_tests_properties(server_structured_clients PROPERTIES
                     ENVIRONMENT "${DSV3_SERVER_ENV};DSV3_NODE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/node"
                     TIMEOUT 300 SKIP_RETURN_CODE 77)

dsv3_test(server_unit_test server_unit_test.cc)
target_link_libraries(server_unit_test PRIVATE dsv3_server)
# Framing checks, request-memory budget, refusals, start-up memory estimate:
# one ctest entry (server_limits_unit) so `ctest -R server_` runs it.
add_executable(server_limits_test server/server_limits_test.cc)
target_link_libraries(server_limits_test PRIVATE dsv3_server GTest::gtest GTest::gtest_main)
add_test(NAME server_limits_unit COMMAND server_limits_test)
# The Responses API (issue 19) without a server: request mapping, refusals,
# output items and the event sequence.
add_executable(server_responses_test server/responses_test.cc)
target_link_libraries(server_responses_test PRIVATE dsv3_server GTest::gtest GTest::gtest_main)
add_test(NAME server_responses_unit COMMAND server_responses_test)

# Dev tool for the load test (tests/server/load_test.py) on a bigger random model.
add_executable(random_model server/random_model.cc)
target_link_libraries(random_model PRIVATE dsv3_runtime)

# Bad command lines: one clear error line, exit status 1.
add_test(NAME cli_serve_bad_model_dir COMMAND ${FAIL} "nonexistent" ${DSV3} serve -m ${T}/nonexistent)
add_test(NAME cli_serve_bad_ctx_size COMMAND ${FAIL} "ctx-size.*max_position_embeddings 256"
         ${DSV3} -t 1 serve -q -m ${G}/v3_tiny_bf16 --ctx-size 100000)
add_test(NAME cli_serve_spec_without_mtp COMMAND ${FAIL} "spec mtp: the model has no MTP layer"
         ${DSV3} -t 1 serve -q -m ${G}/v2lite_tiny_bf16 --spec mtp)
add_test(NAME cli_chat_spec_without_mtp COMMAND ${FAIL} "spec mtp: the model has no MTP layer"
         ${DSV3} -t 1 chat -q -m ${G}/v2lite_tiny_bf16 --spec mtp)
add_test(NAME cli_serve_bad_draft_vocab COMMAND ${FAIL} "draft-vocab 385 is outside"
         ${DSV3} -t 1 serve -q -m ${G}/v3_tiny_bf16 --spec mtp --draft-vocab 385)
add_test(NAME cli_run_bad_draft_vocab COMMAND ${FAIL} "draft-vocab 385 is outside"
         ${DSV3} -t 1 run -q -m ${G}/v3_tiny_bf16 --prompt-ids "1 2" --spec mtp --draft-vocab 385)
add_test(NAME cli_serve_cannot_listen COMMAND ${FAIL} "host/--port: cannot listen on 10.255.255.1:8099"
         ${DSV3} -t 1 serve -q -m ${G}/v3_tiny_bf16 --host 10.255.255.1 --port 8099)

# Structured outputs at scale (issue 19): ten strict schemas of increasing
# nesting (tests/data/schemas/nested_*.json), 200 seeded sampled completions
# each on the bundled model and 200 for the first four on the random-weights
# tiny chat model, every output validated by ajv (npm) and ended by the grammar.
add_test(NAME server_structured_outputs COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_structured_outputs.py)
set_tests_properties(server_structured_outputs PROPERTIES ENVIRONMENT "${DSV3_SERVER_ENV};DSV3_NODE_DIR=${CMAKE_CURRENT_SOURCE_DIR}/node" TIMEOUT 900 SKIP_RETURN_CODE 77)
