# End-to-end tests of the dsv3 binary: golden logits through the CLI, every
# subcommand on a golden checkpoint, and bad input giving one clean error.
add_executable(compare_logits compare_logits.cc)
target_link_libraries(compare_logits PRIVATE dsv3_io)

set(DSV3 $<TARGET_FILE:dsv3>)
set(FAIL ${CMAKE_CURRENT_SOURCE_DIR}/expect_fail.sh)
set(G ${DSV3_GOLDEN_DIR})
set(T ${CMAKE_CURRENT_BINARY_DIR}/tmp)

foreach(case v3_tiny_bf16 v3_tiny_fp8 v2lite_tiny_bf16)
  add_test(NAME cli_logits_${case}
    COMMAND sh -c "${DSV3} logits -m ${G}/${case} --input ${G}/${case}/golden.safetensors --output ${T}/${case}.out.safetensors --prefill 7 && $<TARGET_FILE:compare_logits> ${T}/${case}.out.safetensors ${G}/${case}/golden.safetensors logits")
endforeach()
foreach(case v3_tiny_bf16 v3_tiny_fp8)
  add_test(NAME cli_logits_mtp_${case}
    COMMAND sh -c "${DSV3} logits -m ${G}/${case} --input ${G}/${case}/golden.safetensors --output ${T}/${case}.mtp.safetensors --mtp && $<TARGET_FILE:compare_logits> ${T}/${case}.mtp.safetensors ${G}/${case}/golden.safetensors mtp_logits")
endforeach()

add_test(NAME cli_run_greedy COMMAND ${DSV3} run -q -m ${G}/v3_tiny_bf16 --prompt-ids "0 15 27" -n 8 --temperature 0)
set_tests_properties(cli_run_greedy PROPERTIES PASS_REGULAR_EXPRESSION "^[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+\n$")
add_test(NAME cli_run_sampled_seeded
  COMMAND sh -c "a=$(${DSV3} run -q -m ${G}/v3_tiny_fp8 --prompt-ids '0 1 2' -n 12 --temperature 1 --top-p 0.9 --seed 5); b=$(${DSV3} run -q -m ${G}/v3_tiny_fp8 --prompt-ids '0 1 2' -n 12 --temperature 1 --top-p 0.9 --seed 5); test -n \"$a\" && test \"$a\" = \"$b\"")
add_test(NAME cli_inspect_v3_config COMMAND ${DSV3} inspect -m ${CMAKE_CURRENT_SOURCE_DIR}/configs/deepseek_v3.json)
set_tests_properties(cli_inspect_v3_config PROPERTIES PASS_REGULAR_EXPRESSION "70272 bytes at BF16")
add_test(NAME cli_inspect_golden COMMAND ${DSV3} inspect -m ${G}/v3_tiny_fp8)
set_tests_properties(cli_inspect_golden PROPERTIES PASS_REGULAR_EXPRESSION "F8_E4M3 +[0-9]+ tensors")

# Bad input: one clear error line, exit status 1, never a crash.
add_test(NAME cli_bad_model_dir COMMAND ${FAIL} "nonexistent" ${DSV3} run -m ${T}/nonexistent --prompt-ids "1")
add_test(NAME cli_bad_token_id COMMAND ${FAIL} "token id 999" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "0 999")
add_test(NAME cli_bad_prompt_ids COMMAND ${FAIL} "prompt-ids.*'x3'" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "0 x3")
add_test(NAME cli_bad_empty_prompt COMMAND ${FAIL} "prompt is empty" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids " ")
add_test(NAME cli_bad_temperature COMMAND ${FAIL} "temperature" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "1" --temperature -2)
add_test(NAME cli_bad_context COMMAND ${FAIL} "max_position_embeddings" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "1" -n 100000)
add_test(NAME cli_bad_logits_input COMMAND ${FAIL} "no tensor named 'tokens'" ${DSV3} logits -m ${G}/v3_tiny_bf16 --input ${G}/v3_tiny_bf16/model.safetensors --output ${T}/x.safetensors)
add_test(NAME cli_bad_mtp COMMAND ${FAIL} "no MTP layer" ${DSV3} logits -m ${G}/v2lite_tiny_bf16 --input ${G}/v2lite_tiny_bf16/golden.safetensors --output ${T}/x.safetensors --mtp)
add_test(NAME cli_bad_model_type
  COMMAND sh -c "mkdir -p ${T}/badtype && echo '{\"model_type\":\"llama\"}' > ${T}/badtype/config.json && ${FAIL} \"model_type.*llama\" ${DSV3} inspect -m ${T}/badtype")
add_test(NAME cli_bad_truncated_checkpoint
  COMMAND sh -c "mkdir -p ${T}/trunc && cp ${G}/v3_tiny_bf16/config.json ${T}/trunc/ && head -c 100000 ${G}/v3_tiny_bf16/model.safetensors > ${T}/trunc/model.safetensors && ${FAIL} \"trunc/model.safetensors.*(past the end|truncated)\" ${DSV3} run -m ${T}/trunc --prompt-ids 1")

set(DSV3_CLI_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
file(MAKE_DIRECTORY ${DSV3_CLI_TMP})

# dsv3 convert: usage errors name the flag; a conversion prints its summary;
# a GGUF loads with --model; a failing write (ulimit -f, SIGXFSZ ignored)
# reports the write error and leaves no output file.
add_test(NAME cli_convert_bad_target COMMAND $<TARGET_FILE:dsv3> convert --to int4 ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/x)
set_tests_properties(cli_convert_bad_target PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --to: 'int4' is not bf16, fp8 or gguf")
add_test(NAME cli_convert_bad_type COMMAND $<TARGET_FILE:dsv3> convert --to gguf --type q4_k ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/x.gguf)
set_tests_properties(cli_convert_bad_type PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --type: 'q4_k'")
add_test(NAME cli_convert_fp8_to_bf16 COMMAND $<TARGET_FILE:dsv3> convert --force --to bf16 ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/bf16)
set_tests_properties(cli_convert_fp8_to_bf16 PROPERTIES PASS_REGULAR_EXPRESSION "97 out \\(73 converted, 24 copied, 73 dropped\\)")
add_test(NAME cli_convert_gguf_and_load COMMAND sh -c
  "$<TARGET_FILE:dsv3> convert -q --force --to gguf --type q8_0 ${DSV3_GOLDEN_DIR}/v2lite_tiny_bf16 ${DSV3_CLI_TMP}/v2.gguf && $<TARGET_FILE:dsv3> logits -m ${DSV3_CLI_TMP}/v2.gguf --input ${DSV3_GOLDEN_DIR}/v2lite_tiny_bf16/golden.safetensors --output ${DSV3_CLI_TMP}/v2.logits.safetensors")
set_tests_properties(cli_convert_gguf_and_load PROPERTIES PASS_REGULAR_EXPRESSION "wrote .*logits \\[2, 64, 300\\]")
add_test(NAME cli_convert_write_failure COMMAND sh -c
  "rm -f ${DSV3_CLI_TMP}/full.gguf; (trap '' XFSZ; ulimit -f 1024; exec $<TARGET_FILE:dsv3> convert -q --to gguf --type f32 ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 ${DSV3_CLI_TMP}/full.gguf); rc=$?; ls ${DSV3_CLI_TMP}/full.gguf* 2>/dev/null; echo exit=$rc")
set_tests_properties(cli_convert_write_failure PROPERTIES PASS_REGULAR_EXPRESSION "full.gguf.tmp: write failed: File too large\nexit=1\n$")
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
