# Issue 20's CLI regression tests: hostile configs, GGUF metadata, nesting,
# flags and allocation failure each give one "dsv3: error:" line and exit 1
# (expect_fail.sh), never an abort, a crash or gigabytes of memory. The
# inputs are crafted by tests/hostile_inputs.py.
set(H ${CMAKE_CURRENT_BINARY_DIR}/tmp/hostile)
# AddressSanitizer reserves terabytes of address space, so `ulimit -v` runs
# (which show the refusals need no memory) apply only to ordinary builds.
set(ULIMIT_V "ulimit -v 1500000 &&")
if(DSV3_SANITIZE)
  set(ULIMIT_V "")
endif()
set(HOSTILE_PY ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/hostile_inputs.py)
file(MAKE_DIRECTORY ${H})
add_test(NAME hostile_make_inputs COMMAND ${HOSTILE_PY} configs ${H} ${G})
set_tests_properties(hostile_make_inputs PROPERTIES FIXTURES_SETUP hostile_inputs)
add_test(NAME hostile_make_gguf COMMAND ${DSV3} convert -q --force --to gguf --type f32 ${G}/v3_tiny_bf16 ${H}/base.gguf)
set_tests_properties(hostile_make_gguf PROPERTIES FIXTURES_SETUP hostile_gguf)

# Counts that would size allocations; 1.5 GB of address space is far more
# than a refusal needs and far less than what these counts once took.
foreach(case layers experts experts_1m layers_1m nextn eps)
  add_test(NAME hostile_config_${case}
    COMMAND sh -c "${ULIMIT_V} exec ${FAIL} \"hostile/${case}/config.json: field '(num_hidden_layers|n_routed_experts|num_nextn_predict_layers|rms_norm_eps)'\" ${DSV3} -t 1 inspect -m ${H}/${case}")
  set_tests_properties(hostile_config_${case} PROPERTIES FIXTURES_REQUIRED hostile_inputs)
endforeach()
# The same refusals from the commands that load (run) and rewrite (convert).
add_test(NAME hostile_config_run_convert_layers
  COMMAND sh -c "${ULIMIT_V} ${FAIL} \"field 'num_hidden_layers' is 1099511627776\" ${DSV3} -t 1 run -m ${H}/layers --prompt-ids 1 && ${FAIL} \"field 'n_routed_experts' is 2147483648\" ${DSV3} -t 1 convert -q --force --to fp8 ${H}/experts ${H}/experts_out")
set_tests_properties(hostile_config_run_convert_layers PROPERTIES FIXTURES_REQUIRED hostile_inputs)
add_test(NAME hostile_config_run_eps
  COMMAND ${FAIL} "field 'rms_norm_eps' must be a finite number" ${DSV3} -t 1 run -m ${H}/eps --prompt-ids "1 2")
set_tests_properties(hostile_config_run_eps PROPERTIES FIXTURES_REQUIRED hostile_inputs)

# GGUF metadata through the same validator, errors naming the GGUF key.
foreach(spec "block_count;0x7FFFFFFF" "expert_count;0x7FFFFFFF" "block_count;1000000")
  list(GET spec 0 key)
  list(GET spec 1 value)
  add_test(NAME hostile_gguf_${key}_${value}
    COMMAND sh -c "${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/hostile_inputs.py gguf ${H}/base.gguf ${H}/${key}_${value}.gguf deepseek2.${key} ${value} && ${ULIMIT_V} ${FAIL} \"metadata key 'deepseek2.${key}'\" ${DSV3} -t 1 inspect -m ${H}/${key}_${value}.gguf && ${FAIL} \"metadata key 'deepseek2.${key}'\" ${DSV3} -t 1 run -m ${H}/${key}_${value}.gguf --prompt-ids 1")
  set_tests_properties(hostile_gguf_${key}_${value} PROPERTIES FIXTURES_REQUIRED hostile_gguf)
endforeach()

# JSON nested 100,000 deep: a config.json being rewritten by convert, and a
# chat file's tool-call arguments (these crashed with a stack overflow).
add_test(NAME hostile_deep_config_convert
  COMMAND ${FAIL} "deep/config.json: JSON nested deeper than 128 levels" ${DSV3} convert -q --force --to bf16 ${H}/deep ${H}/deep_out)
add_test(NAME hostile_deep_config_run
  COMMAND ${FAIL} "deep/config.json: JSON nested deeper than 128 levels" ${DSV3} -t 1 run -m ${H}/deep --prompt-ids 1)
add_test(NAME hostile_deep_chat_tokenize
  COMMAND ${FAIL} "deep_chat.json: JSON nested deeper than 128 levels" ${DSV3} tokenize --tokenizer ${CMAKE_SOURCE_DIR}/models/brown-10m --chat ${H}/deep_chat.json)
set_tests_properties(hostile_deep_config_convert hostile_deep_config_run hostile_deep_chat_tokenize
                     PROPERTIES FIXTURES_REQUIRED hostile_inputs)

# -t: libgomp crashed at 70000 threads and printed its own error at 50000.
foreach(t 50000 70000 -1)
  add_test(NAME hostile_threads_${t} COMMAND ${DSV3} -t ${t} inspect -m ${G}/v3_tiny_bf16)
  set_tests_properties(hostile_threads_${t} PROPERTIES PASS_REGULAR_EXPRESSION "--threads: Value ${t} not in range 0 to [0-9]+")
endforeach()

# A temperature so small that 1/T overflows float is greedy (it always gave
# the last token id), and a reading that outgrows the address space reports
# running out of memory instead of aborting on std::bad_alloc.
add_test(NAME hostile_tiny_temperature_is_greedy
  COMMAND sh -c "a=$(${DSV3} -t 1 run -q -m ${G}/v3_tiny_bf16 --prompt-ids '0 15 27' -n 8 --temperature 1e-40) && b=$(${DSV3} -t 1 run -q -m ${G}/v3_tiny_bf16 --prompt-ids '0 15 27' -n 8 --temperature 0) && echo \"$a / $b\" && test -n \"$a\" && test \"$a\" = \"$b\"")
if(NOT DSV3_SANITIZE)  # the allocation must fail, which ASan reports instead of throwing
add_test(NAME hostile_out_of_memory
  COMMAND sh -c "truncate -s 150M ${H}/big.txt && ulimit -v 200000 && exec ${FAIL} \"out of memory while running 'dsv3 tokenize'\" ${DSV3} -t 1 tokenize --tokenizer ${CMAKE_SOURCE_DIR}/models/brown-10m -f ${H}/big.txt")
endif()
