# The bundled default model (models/brown-10m): `dsv3` without --model runs
# it, and any engine change that alters its numerics is noticed here: a pinned
# greedy continuation, the perplexity of a held-out Brown document within
# 1e-3 relative of the value measured when the model was shipped (card:
# models/brown-10m/README.md), greedy output unchanged by MTP speculative
# decoding, the first-draft acceptance of its refitted MTP layer on held-out
# prompts, the first chat reply with the shipped sampling defaults not
# looping, and `dsv3 perplexity`'s bad-input errors.
set(DSV3 $<TARGET_FILE:dsv3>)
set(FAIL ${CMAKE_CURRENT_SOURCE_DIR}/expect_fail.sh)
set(T ${CMAKE_CURRENT_BINARY_DIR}/tmp)
set(EXCERPT ${CMAKE_CURRENT_SOURCE_DIR}/data/brown-validation-excerpt.txt)

add_test(NAME default_model_greedy
  COMMAND ${DSV3} run -t 1 -q --prompt "The president said that" -n 20 --temperature 0)
set_tests_properties(default_model_greedy PROPERTIES PASS_REGULAR_EXPRESSION
  "^ the President would be willing to get a good job. \"If you want to do it.\n$")

# 104.9959 when shipped; the window is +-0.1% (float32 summation-order noise is ~1e-6).
add_test(NAME default_model_perplexity
  COMMAND sh -c "out=$(${DSV3} perplexity -t 1 -q --file ${EXCERPT}) && echo \"$out\" && echo \"$out\" | awk -F'[= ]' '{ exit !($2 > 104.891 && $2 < 105.101 && $6 == 3552) }'")

foreach(k 1 2 3)
  add_test(NAME default_model_spec_greedy_k${k}
    COMMAND sh -c "for p in 'The president said that' 'She looked at him and' 'In the morning' 'It was a'; do a=$(${DSV3} run -t 1 -q --prompt \"$p\" -n 48 --temperature 0) && b=$(${DSV3} run -t 1 -q --prompt \"$p\" -n 48 --temperature 0 --spec mtp --draft-tokens ${k}) && test -n \"$a\" && test \"$a\" = \"$b\" || exit 1; done")
endforeach()

# 82% (K = 1) and 76% of all drafts (K = 2) when shipped, 66% / 51% with the MTP layer as
# pre-trained; the floors leave room for other SIMD targets' rounding.
add_test(NAME default_model_spec_acceptance_k1
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/spec_acceptance_check.sh ${DSV3} ${EXCERPT} 74 12 --draft-tokens 1)
add_test(NAME default_model_spec_acceptance_k2
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/spec_acceptance_check.sh ${DSV3} ${EXCERPT} 68 12 --draft-tokens 2)

add_test(NAME perplexity_bad_missing_file COMMAND ${FAIL} "nonexistent.txt: cannot open: No such file or directory" ${DSV3} perplexity --file ${T}/nonexistent.txt)
add_test(NAME perplexity_bad_no_input COMMAND ${FAIL} "give --file TEXT or --tokens" ${DSV3} perplexity)
add_test(NAME perplexity_bad_empty_file
  COMMAND sh -c "mkdir -p ${T} && : > ${T}/empty.txt && ${FAIL} 'empty.txt: the file is empty' ${DSV3} perplexity --file ${T}/empty.txt")
add_test(NAME perplexity_bad_token_size
  COMMAND sh -c "mkdir -p ${T} && printf 'abcde' > ${T}/odd.bin && ${FAIL} 'odd.bin: size is not a multiple of 4' ${DSV3} perplexity --tokens ${T}/odd.bin")
add_test(NAME perplexity_bad_token_id
  COMMAND sh -c "mkdir -p ${T} && printf '\\001\\000\\000\\000\\377\\377\\000\\000' > ${T}/big.bin && ${FAIL} 'big.bin: id 65535 at index 1 is outside' ${DSV3} perplexity --tokens ${T}/big.bin")
add_test(NAME perplexity_bad_context COMMAND ${FAIL} "context must be in \\[2, max_position_embeddings = 1024\\], got 1" ${DSV3} perplexity --file ${EXCERPT} --context 1)
add_test(NAME perplexity_bad_model COMMAND ${FAIL} "nonexistent" ${DSV3} perplexity -m ${T}/nonexistent --file ${EXCERPT})

# The first chat reply with the shipped generation_config.json does not loop:
# distinct-2 of each 256-token reply >= 0.9 (greedy replies score 0.39-0.55).
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME default_model_chat_no_loop
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/chat_no_loop_test.py ${DSV3})
# --save-logprobs then --kl-base (issue 16's quality figures): the model
# against its own saved distributions is KL 0 with every top token agreeing;
# a base saved from other windows or another text is refused.
add_test(NAME perplexity_kl_base_self
  COMMAND sh -c "mkdir -p ${T} && ${DSV3} perplexity -t 1 -q --file ${EXCERPT} -c 128 --save-logprobs ${T}/brown.lp && ${DSV3} perplexity -t 1 -q --file ${EXCERPT} -c 128 --kl-base ${T}/brown.lp")
set_tests_properties(perplexity_kl_base_self PROPERTIES FIXTURES_SETUP brown_logprobs
  PASS_REGULAR_EXPRESSION "tokens=3552 kl_mean=0.000000 top1_agree=1.0000 base_perplexity=[0-9]")
add_test(NAME perplexity_kl_base_other_context
  COMMAND ${FAIL} "--kl-base: .*brown.lp: saved with --context 128, this run uses 64" ${DSV3} perplexity -t 1 -q --file ${EXCERPT} -c 64 --kl-base ${T}/brown.lp)
add_test(NAME perplexity_kl_base_other_text
  COMMAND sh -c "mkdir -p ${T} && head -c 2000 ${EXCERPT} > ${T}/short.txt && ${FAIL} 'its ids are not this input' ${DSV3} perplexity -t 1 -q --file ${T}/short.txt -c 128 --kl-base ${T}/brown.lp")
set_tests_properties(perplexity_kl_base_other_context perplexity_kl_base_other_text PROPERTIES FIXTURES_REQUIRED brown_logprobs)
# --exact-activations reaches the kernels: a Q8_0 file of the bundled model
# scores differently with float32 and with int8 activations (both near BF16).
add_test(NAME perplexity_exact_activations_flag
  COMMAND sh -c "mkdir -p ${T} && rm -f ${T}/brown-q8_0.gguf && ${DSV3} convert ${CMAKE_SOURCE_DIR}/models/brown-10m ${T}/brown-q8_0.gguf --to gguf --type q8_0 >/dev/null 2>&1 && a=$(${DSV3} -t 1 perplexity -q -m ${T}/brown-q8_0.gguf --tokenizer ${CMAKE_SOURCE_DIR}/models/brown-10m --file ${EXCERPT} -c 128 --kl-base ${T}/brown.lp) && b=$(${DSV3} -t 1 --exact-activations perplexity -q -m ${T}/brown-q8_0.gguf --tokenizer ${CMAKE_SOURCE_DIR}/models/brown-10m --file ${EXCERPT} -c 128 --kl-base ${T}/brown.lp) && echo \"$a\" && echo \"$b\" && [ \"$a\" != \"$b\" ] && echo \"$a $b\" | awk '{ for (i = 1; i <= NF; ++i) if ($i ~ /^kl_mean=/) { split($i, kv, \"=\"); if (kv[2] > 0.01) exit 1 } }'")
set_tests_properties(perplexity_exact_activations_flag PROPERTIES FIXTURES_REQUIRED brown_logprobs)
# --int8-fp8 reaches the kernels (issue 18): an FP8 copy of the bundled model
# scores differently with it and without, both near BF16 (KL <= 0.01).
add_test(NAME perplexity_int8_fp8_flag
  COMMAND sh -c "mkdir -p ${T} && rm -rf ${T}/brown-fp8 && ${DSV3} convert --to fp8 ${CMAKE_SOURCE_DIR}/models/brown-10m ${T}/brown-fp8 >/dev/null 2>&1 && a=$(${DSV3} -t 1 perplexity -q -m ${T}/brown-fp8 --tokenizer ${CMAKE_SOURCE_DIR}/models/brown-10m --file ${EXCERPT} -c 128 --kl-base ${T}/brown.lp) && b=$(${DSV3} -t 1 --int8-fp8 perplexity -q -m ${T}/brown-fp8 --tokenizer ${CMAKE_SOURCE_DIR}/models/brown-10m --file ${EXCERPT} -c 128 --kl-base ${T}/brown.lp) && echo \"$a\" && echo \"$b\" && [ \"$a\" != \"$b\" ] && echo \"$a $b\" | awk '{ for (i = 1; i <= NF; ++i) if ($i ~ /^kl_mean=/) { split($i, kv, \"=\"); if (kv[2] > 0.01) exit 1 } }'")
set_tests_properties(perplexity_int8_fp8_flag PROPERTIES FIXTURES_REQUIRED brown_logprobs)
