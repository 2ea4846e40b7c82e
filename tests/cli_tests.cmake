# dsv3 init and dsv3 bench end to end on a tiny config (fields, not speed),
# and their bad-input errors.
set(DSV3_CLI_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
add_test(NAME cli_init_tiny
         COMMAND dsv3 init --config ${DSV3_GOLDEN_DIR}/v3_tiny_fp8/config.json --out ${DSV3_CLI_TMP}/init_tiny
                 --shard-mb 1 --seed 3)
set_tests_properties(cli_init_tiny PROPERTIES FIXTURES_SETUP cli_tiny_checkpoint ENVIRONMENT "OMP_WAIT_POLICY=passive"
                     PASS_REGULAR_EXPRESSION "wrote .*init_tiny \\(fp8, seed 3")
add_test(NAME cli_bench_json_tiny
         COMMAND dsv3 -t 2 bench --model ${DSV3_CLI_TMP}/init_tiny -p 8 -n 2 -b 1,2 --reps 1 --membw-mb 8
                 --membw-reps 1 --head fp8 --kv fp8 --json)
set_tests_properties(cli_bench_json_tiny PROPERTIES FIXTURES_REQUIRED cli_tiny_checkpoint
                     ENVIRONMENT "OMP_WAIT_POLICY=passive"
                     PASS_REGULAR_EXPRESSION "\"prefill_tokens_per_s\": [0-9].*\"decode_tokens_per_s\": {[^}]*\"1\": [0-9][^}]*\"2\": [0-9]")
add_test(NAME cli_bench_text_tiny
         COMMAND dsv3 -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 -p 8 -n 2 -b 1 --reps 1 --membw-mb 8
                 --membw-reps 1)
set_tests_properties(cli_bench_text_tiny PROPERTIES
                     PASS_REGULAR_EXPRESSION "prefill 8 tokens: .* tok/s.*of the FMA peak.*of roofline.*peak RSS")
add_test(NAME cli_init_bad_dtype
         COMMAND dsv3 init --config ${DSV3_GOLDEN_DIR}/v3_tiny_fp8/config.json --out ${DSV3_CLI_TMP}/bad --dtype int4)
set_tests_properties(cli_init_bad_dtype PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --dtype must be fp8 or bf16")
add_test(NAME cli_bench_needs_model COMMAND dsv3 bench -p 8)
set_tests_properties(cli_bench_needs_model PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: bench: --model DIR is required")
add_test(NAME cli_bench_bad_head COMMAND dsv3 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 --head int4)
set_tests_properties(cli_bench_bad_head PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --head must be stored, bf16 or fp8")
