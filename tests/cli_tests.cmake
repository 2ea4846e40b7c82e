# CLI tests: run the dsv3 binary and check its exit status / output.
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
