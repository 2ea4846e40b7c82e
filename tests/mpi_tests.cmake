# Expert parallelism under mpirun (issue 14): -np 2 and 4 over shared memory
# (btl vader) and TCP give logits bit-identical (cmp) to one process on the
# golden checkpoints (full prefill; prefill 7 then decode, with MTP), greedy
# and seeded text identical; bad input ends every rank with a clear error; a
# killed rank ends the job within seconds. Helpers: mpi_run.sh (mpirun as
# root, oversubscribed, ob1 + the chosen BTL), mpi_expect_fail.sh,
# mpi_kill.sh. One OpenMP thread per rank; the references use two.
dsv3_test(expert_placement_test expert_placement_test.cc)
add_executable(mpi_comm_test mpi_comm_test.cc)
target_link_libraries(mpi_comm_test PRIVATE dsv3_dist)
# The expected rank-order sums must not be fused into FMAs by the compiler.
set_source_files_properties(mpi_comm_test.cc PROPERTIES COMPILE_OPTIONS -ffp-contract=off)

set(MPI_RUN ${CMAKE_CURRENT_SOURCE_DIR}/mpi_run.sh)
set(MPI_FAIL ${CMAKE_CURRENT_SOURCE_DIR}/mpi_expect_fail.sh)
set(MPI_T ${CMAKE_CURRENT_BINARY_DIR}/tmp/mpi)
file(MAKE_DIRECTORY ${MPI_T})
set(MPI_TEST_PROPS ENVIRONMENT "OMP_WAIT_POLICY=passive" TIMEOUT 120)

add_test(NAME mpi_comm_np1 COMMAND mpi_comm_test)
add_test(NAME mpi_comm_np2_vader COMMAND ${MPI_RUN} 2 vader $<TARGET_FILE:mpi_comm_test>)
add_test(NAME mpi_comm_np4_tcp COMMAND ${MPI_RUN} 4 tcp $<TARGET_FILE:mpi_comm_test>)
set_tests_properties(mpi_comm_np1 mpi_comm_np2_vader mpi_comm_np4_tcp PROPERTIES ${MPI_TEST_PROPS}
                     PASS_REGULAR_EXPRESSION "^ok: [124] ranks")

# Logits: mode "prefill" runs every position in one forward; "decode"
# prefills 7 and decodes the rest through the cache, with MTP where present.
# Sets `var` to the `dsv3 logits` arguments (one string) for INPUT.
function(logits_args var case mode input)
  set(args logits -m ${G}/${case} --input ${input})
  if(mode STREQUAL "decode")
    list(APPEND args --prefill 7)
    if(NOT case STREQUAL "v2lite_tiny_bf16")
      list(APPEND args --mtp)
    endif()
  endif()
  string(REPLACE ";" " " args "${args}")
  set(${var} "${args}" PARENT_SCOPE)
endfunction()
foreach(case v3_tiny_bf16 v3_tiny_fp8 v2lite_tiny_bf16)
  foreach(mode prefill decode)
    logits_args(args ${case} ${mode} ${G}/${case}/golden.safetensors)
    set(ref ${MPI_T}/${case}.${mode}.np1.safetensors)
    add_test(NAME mpi_ref_${case}_${mode} COMMAND sh -c "${DSV3} -t 2 ${args} --output ${ref}")
    set_tests_properties(mpi_ref_${case}_${mode} PROPERTIES FIXTURES_SETUP mpi_ref_${case}_${mode} ${MPI_TEST_PROPS})
    foreach(np 2 4)
      foreach(btl vader tcp)
        set(name mpi_logits_${case}_${mode}_np${np}_${btl})
        set(out ${MPI_T}/${case}.${mode}.np${np}.${btl}.safetensors)
        add_test(NAME ${name} COMMAND sh -c "rm -f ${out} && ${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 ${args} --output ${out} && cmp ${ref} ${out} && echo bit-identical")
        set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED mpi_ref_${case}_${mode} ${MPI_TEST_PROPS}
                             PASS_REGULAR_EXPRESSION "bit-identical")
      endforeach()
    endforeach()
  endforeach()
endforeach()

# Data-parallel attention (`--attention data`: sequence b's attention, dense
# layers and shared experts on rank b % N only): six sequences, full prefill and prefill 7 then decode (with MTP where present),
# within 1e-5 of the largest |logit| of one process (the kernels round by the
# rows in a call; measured <= 6e-7) and no argmax changed
# (compare_logits.py).
foreach(case v3_tiny_bf16 v3_tiny_fp8 v2lite_tiny_bf16)
  file(READ ${G}/${case}/config.json cfg_text)
  string(JSON vocab GET "${cfg_text}" vocab_size)
  set(six ${MPI_T}/six_${case}.safetensors)
  add_test(NAME mpi_dp_input_${case} COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/mpi_make_tokens.py 6 24 ${vocab} ${six})
  set_tests_properties(mpi_dp_input_${case} PROPERTIES FIXTURES_SETUP mpi_dp_input_${case})
  foreach(mode prefill decode)
    logits_args(args ${case} ${mode} ${six})
    set(ref ${MPI_T}/six_${case}.${mode}.np1.safetensors)
    add_test(NAME mpi_dp_ref_${case}_${mode} COMMAND sh -c "${DSV3} -t 2 ${args} --output ${ref}")
    set_tests_properties(mpi_dp_ref_${case}_${mode} PROPERTIES FIXTURES_SETUP mpi_dp_ref_${case}_${mode}
                         FIXTURES_REQUIRED mpi_dp_input_${case} ${MPI_TEST_PROPS})
    foreach(np 2 4)
      foreach(btl vader tcp)
        set(name mpi_dp_logits_${case}_${mode}_np${np}_${btl})
        set(out ${MPI_T}/six_${case}.${mode}.dp${np}.${btl}.safetensors)
        add_test(NAME ${name} COMMAND sh -c "rm -f ${out} && ${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 ${args} --attention data --output ${out} && python3 ${CMAKE_CURRENT_SOURCE_DIR}/compare_logits.py ${ref} ${out} 1e-5")
        set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "mpi_dp_ref_${case}_${mode};mpi_dp_input_${case}"
                             ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION "within bound")
      endforeach()
    endforeach()
  endforeach()
endforeach()
# Two micro-batches per MoE layer (`--micro-batches 2`): the same bound.
foreach(cfg "2;vader" "4;tcp")
  list(GET cfg 0 np)
  list(GET cfg 1 btl)
  set(six ${MPI_T}/six_v3_tiny_bf16.safetensors)
  add_test(NAME mpi_dp_logits_micro_batches_np${np}_${btl}
    COMMAND sh -c "${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 --micro-batches 2 logits -m ${G}/v3_tiny_bf16 --input ${six} --prefill 7 --mtp --attention data --output ${MPI_T}/mb${np}.safetensors && python3 ${CMAKE_CURRENT_SOURCE_DIR}/compare_logits.py ${MPI_T}/six_v3_tiny_bf16.decode.np1.safetensors ${MPI_T}/mb${np}.safetensors 1e-5")
  set_tests_properties(mpi_dp_logits_micro_batches_np${np}_${btl} PROPERTIES
                       FIXTURES_REQUIRED "mpi_dp_ref_v3_tiny_bf16_decode;mpi_dp_input_v3_tiny_bf16" ${MPI_TEST_PROPS}
                       PASS_REGULAR_EXPRESSION "within bound")
endforeach()
# One sequence (the fp8 golden batch) with data-parallel attention at -np 4:
# rank 0 runs it, ranks 1-3 only serve their experts, and every product sees
# the rows it sees in one process, so the file is bit-identical (`cmp`).
# (`logits` picks this by itself for one sequence: the mpi_logits_v3_tiny_fp8
# tests above run it that way.)
add_test(NAME mpi_dp_logits_one_sequence_np4
  COMMAND sh -c "${MPI_RUN} 4 vader ${DSV3} -t 1 logits -m ${G}/v3_tiny_fp8 --input ${G}/v3_tiny_fp8/golden.safetensors --prefill 7 --mtp --attention data --output ${MPI_T}/idle.safetensors && cmp ${MPI_T}/v3_tiny_fp8.decode.np1.safetensors ${MPI_T}/idle.safetensors && echo bit-identical")
set_tests_properties(mpi_dp_logits_one_sequence_np4 PROPERTIES FIXTURES_REQUIRED mpi_ref_v3_tiny_fp8_decode ${MPI_TEST_PROPS}
                     PASS_REGULAR_EXPRESSION "bit-identical")

# An explicit, interleaved expert map, and 3 ranks over 12 experts.
file(WRITE ${MPI_T}/interleaved.map "# even experts on rank 1, odd on rank 0\n1: 0 2 4 6 8 10 12 14\n0: 1,3,5,7,9,11,13,15\n")
add_test(NAME mpi_logits_expert_map_np2
  COMMAND sh -c "${MPI_RUN} 2 vader ${DSV3} -t 1 --expert-map ${MPI_T}/interleaved.map logits -m ${G}/v3_tiny_bf16 --input ${G}/v3_tiny_bf16/golden.safetensors --prefill 7 --mtp --output ${MPI_T}/map.safetensors && cmp ${MPI_T}/v3_tiny_bf16.decode.np1.safetensors ${MPI_T}/map.safetensors && echo bit-identical")
set_tests_properties(mpi_logits_expert_map_np2 PROPERTIES FIXTURES_REQUIRED mpi_ref_v3_tiny_bf16_decode ${MPI_TEST_PROPS}
                     PASS_REGULAR_EXPRESSION "bit-identical")
add_test(NAME mpi_logits_v2lite_np3
  COMMAND sh -c "${MPI_RUN} 3 vader ${DSV3} -t 1 logits -m ${G}/v2lite_tiny_bf16 --input ${G}/v2lite_tiny_bf16/golden.safetensors --prefill 7 --output ${MPI_T}/np3.safetensors && cmp ${MPI_T}/v2lite_tiny_bf16.decode.np1.safetensors ${MPI_T}/np3.safetensors && echo bit-identical")
set_tests_properties(mpi_logits_v2lite_np3 PROPERTIES FIXTURES_REQUIRED mpi_ref_v2lite_tiny_bf16_decode ${MPI_TEST_PROPS}
                     PASS_REGULAR_EXPRESSION "bit-identical")

# dsv3 run: greedy, seeded sampling and MTP speculation print the same ids.
set(RUN_GREEDY run -q -m ${G}/v3_tiny_fp8 --prompt-ids 0,15,27 -n 40 --temperature 0)
set(RUN_SAMPLED run -q -m ${G}/v3_tiny_bf16 --prompt-ids 0,1,2 -n 40 --temperature 1 --top-p 0.9 --seed 5)
set(RUN_SPEC run -q -m ${G}/v3_tiny_bf16 --prompt-ids 0,15,27 -n 40 --temperature 0 --spec mtp)
foreach(kind GREEDY SAMPLED SPEC)
  string(REPLACE ";" " " args "${RUN_${kind}}")
  string(TOLOWER ${kind} lower)
  foreach(np 2 4)
    foreach(btl vader tcp)
      add_test(NAME mpi_run_${lower}_np${np}_${btl}
        COMMAND sh -c "a=$(${DSV3} -t 2 ${args}) && b=$(${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 ${args}) && test -n \"$a\" && test \"$a\" = \"$b\" && echo \"identical: $b\"")
      set_tests_properties(mpi_run_${lower}_np${np}_${btl} PROPERTIES ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION "identical: [0-9]")
    endforeach()
  endforeach()
endforeach()

# Bad input: one clear error per rank, non-zero exit, no hang.
set(LOGITS_FP8 logits -m ${G}/v3_tiny_fp8 --input ${G}/v3_tiny_fp8/golden.safetensors --output ${MPI_T}/bad.safetensors)
string(REPLACE ";" " " LOGITS_FP8_SH "${LOGITS_FP8}")
add_test(NAME mpi_bad_more_ranks_than_experts
  COMMAND ${MPI_FAIL} 9 "9 ranks but the model has only 8 routed experts" ${MPI_RUN} 9 vader ${DSV3} -t 1 ${LOGITS_FP8})
file(WRITE ${MPI_T}/twice.map "0: 0-4\n1: 4-7\n")
add_test(NAME mpi_bad_expert_owned_twice
  COMMAND ${MPI_FAIL} 2 "twice.map line 2: expert 4 is owned twice" ${MPI_RUN} 2 vader ${DSV3} -t 1 --expert-map ${MPI_T}/twice.map ${LOGITS_FP8})
file(WRITE ${MPI_T}/unowned.map "0: 0-3\n1: 4 5 6\n")
add_test(NAME mpi_bad_expert_unowned
  COMMAND ${MPI_FAIL} 2 "unowned.map: expert 7 is owned by no rank" ${MPI_RUN} 2 vader ${DSV3} -t 1 --expert-map ${MPI_T}/unowned.map ${LOGITS_FP8})
add_test(NAME mpi_bad_different_checkpoints
  COMMAND ${MPI_FAIL} 2 "rank 1 loaded a different checkpoint or config.json than rank 0" ${MPI_RUN} 1 vader ${DSV3} -t 1 ${LOGITS_FP8} : -np 1 ${DSV3} -t 1 logits -m ${G}/v3_tiny_bf16 --input ${G}/v3_tiny_fp8/golden.safetensors --output ${MPI_T}/bad.safetensors)
# Same tensors, one config value changed (rms_norm_eps): still refused.
add_test(NAME mpi_bad_different_configs
  COMMAND sh -c "mkdir -p ${MPI_T}/eps && ln -sf ${G}/v3_tiny_fp8/model.safetensors ${MPI_T}/eps/ && sed 's/\"rms_norm_eps\": [^,]*/\"rms_norm_eps\": 1e-05/' ${G}/v3_tiny_fp8/config.json > ${MPI_T}/eps/config.json && ! cmp -s ${G}/v3_tiny_fp8/config.json ${MPI_T}/eps/config.json && ${MPI_FAIL} 2 'rank 1 loaded a different checkpoint or config.json' ${MPI_RUN} 1 vader ${DSV3} -t 1 ${LOGITS_FP8_SH} : -np 1 ${DSV3} -t 1 logits -m ${MPI_T}/eps --input ${G}/v3_tiny_fp8/golden.safetensors --output ${MPI_T}/bad.safetensors")
add_test(NAME mpi_bad_command_not_distributed
  COMMAND ${MPI_FAIL} 1+ "'dsv3 init' does not run expert-parallel yet" ${MPI_RUN} 2 tcp ${DSV3} -t 1 init --out ${MPI_T}/init)
add_test(NAME mpi_bad_prompt_ids
  COMMAND ${MPI_FAIL} 2 "prompt-ids: 'x' is not a token id" ${MPI_RUN} 2 vader ${DSV3} -t 1 run -m ${G}/v3_tiny_fp8 --prompt-ids "0 x")
# A failure on one rank only is agreed: rank 1's input missing, or rank 0
# unable to create the output (checked before any forward): both ranks report
# that rank's error.
add_test(NAME mpi_bad_input_on_one_rank
  COMMAND ${MPI_FAIL} 2 "rank 1: .*missing.safetensors: cannot open" ${MPI_RUN} 1 vader ${DSV3} -t 1 ${LOGITS_FP8} : -np 1 ${DSV3} -t 1 logits -m ${G}/v3_tiny_fp8 --input ${MPI_T}/missing.safetensors --output ${MPI_T}/bad.safetensors)
add_test(NAME mpi_bad_output_on_rank0
  COMMAND ${MPI_FAIL} 2 "rank 0: .*nonexistent/x.safetensors.tmp: cannot create" ${MPI_RUN} 2 vader ${DSV3} -t 1 logits -m ${G}/v3_tiny_fp8 --input ${G}/v3_tiny_fp8/golden.safetensors --output ${MPI_T}/nonexistent/x.safetensors)
# Ranks given different flags (one a typo): the job is aborted, no hang.
add_test(NAME mpi_bad_flags_on_one_rank
  COMMAND ${MPI_FAIL} 1+ "--no-such-flag|rank 1: exiting with status" ${MPI_RUN} 1 vader ${DSV3} -t 1 ${LOGITS_FP8} : -np 1 ${DSV3} -t 1 logits --no-such-flag)
set_tests_properties(mpi_bad_input_on_one_rank mpi_bad_output_on_rank0 mpi_bad_flags_on_one_rank PROPERTIES ${MPI_TEST_PROPS})
set_tests_properties(mpi_bad_more_ranks_than_experts mpi_bad_expert_owned_twice mpi_bad_expert_unowned
                     mpi_bad_different_checkpoints mpi_bad_different_configs mpi_bad_command_not_distributed
                     mpi_bad_prompt_ids PROPERTIES ${MPI_TEST_PROPS})

# A rank killed mid-run (SIGKILL during a long decode): the job ends, non-zero.
add_test(NAME mpi_long_input COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/mpi_make_tokens.py 256 128 384 ${MPI_T}/long.safetensors)
set_tests_properties(mpi_long_input PROPERTIES FIXTURES_SETUP mpi_long_input)
foreach(cfg "2;vader" "4;tcp")
  list(GET cfg 0 np)
  list(GET cfg 1 btl)
  add_test(NAME mpi_rank_killed_np${np}_${btl}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi_kill.sh ${np} ${btl} ${DSV3} -t 1 logits -m ${G}/v3_tiny_bf16 --input ${MPI_T}/long.safetensors --output ${MPI_T}/long.out.safetensors --prefill 0)
  set_tests_properties(mpi_rank_killed_np${np}_${btl} PROPERTIES FIXTURES_REQUIRED mpi_long_input ${MPI_TEST_PROPS}
                       PASS_REGULAR_EXPRESSION "ok: rank 1 killed")
endforeach()

# dsv3 inspect --ranks: bytes per rank, from config.json alone (DeepSeek-V3:
# 23.1 GB replicated + 83.2 GB of 32 experts on each of 8 ranks, 688 GB in
# all) and from a checkpoint's tensors with an expert map.
add_test(NAME mpi_inspect_ranks_v3_config COMMAND ${DSV3} inspect -m ${CMAKE_CURRENT_SOURCE_DIR}/configs/deepseek_v3.json --ranks 8)
set_tests_properties(mpi_inspect_ranks_v3_config PROPERTIES PASS_REGULAR_EXPRESSION
  "replicated +23\\.127 GB on every rank.*rank 7 +106\\.295 GB: replicated \\+ 83\\.168 GB of 32 routed experts \\(224-255\\)")
add_test(NAME mpi_inspect_ranks_expert_map COMMAND ${DSV3} --expert-map ${MPI_T}/interleaved.map inspect -m ${G}/v3_tiny_bf16 --ranks 2)
set_tests_properties(mpi_inspect_ranks_expert_map PROPERTIES PASS_REGULAR_EXPRESSION
  "bytes as stored.*rank 0 +[0-9.]+ MB: replicated \\+ [0-9.]+ MB of 8 routed experts \\(1 3 5 7 9 11 13 15\\)")
add_test(NAME mpi_inspect_ranks_too_many COMMAND ${FAIL} "--ranks: 9 ranks but the model has only 8 routed experts" ${DSV3} inspect -m ${G}/v3_tiny_fp8 --ranks 9)

# dsv3 bench --comm: all-to-all times and the latency/bandwidth fit per
# transport (fields, not speed).
foreach(btl vader tcp)
  add_test(NAME mpi_bench_comm_np2_${btl} COMMAND ${MPI_RUN} 2 ${btl} ${DSV3} -t 1 bench --comm --comm-max-kb 64 --reps 2)
  set_tests_properties(mpi_bench_comm_np2_${btl} PROPERTIES ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION
    "all-to-all over 2 ranks, transport self,${btl}.*\n +32768 +[0-9.]+ +[0-9.]+\nfit: latency [-0-9.]+ us \\+ bytes / [0-9.]+ GB/s")
endforeach()

# dsv3 bench under mpirun: every rank runs it, rank 0 reports the exchange.
add_test(NAME mpi_bench_model_np2 COMMAND ${MPI_RUN} 2 vader ${DSV3} -t 1 bench -m ${G}/v3_tiny_bf16 -p 8 -n 2 -b 1,4 --reps 1 --membw-mb 8 --membw-reps 1)
set_tests_properties(mpi_bench_model_np2 PROPERTIES ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION
  "decode +batch.*expert exchange \\(rank 0\\): [0-9.]+ s exposed in [0-9]+ MoE layers \\([0-9.]+ ms each; the shared experts ran [0-9.]+ ms per layer during the dispatch\\), [0-9.]+ KB sent per token per layer")
# The same without the overlap: the whole exchange is exposed (what bench
# compares against to say how much the overlap hides).
add_test(NAME mpi_bench_model_np2_no_overlap COMMAND ${MPI_RUN} 2 tcp ${DSV3} -t 1 --no-exchange-overlap bench -m ${G}/v3_tiny_bf16 -p 8 -n 2 -b 1,4 --reps 1 --membw-mb 8 --membw-reps 1)
set_tests_properties(mpi_bench_model_np2_no_overlap PROPERTIES ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION
  "expert exchange \\(rank 0\\): [0-9.]+ s exposed in [0-9]+ MoE layers \\([0-9.]+ ms each; no overlap: the whole exchange\\)")

# A wider batch: 32 sequences, prefill 5 then decode (32 tokens per forward,
# 8 owned by each of 4 ranks), on the FP8 checkpoint.
add_test(NAME mpi_wide_input COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/mpi_make_tokens.py 32 48 320 ${MPI_T}/wide.safetensors)
set(WIDE logits -m ${G}/v3_tiny_fp8 --input ${MPI_T}/wide.safetensors --prefill 5 --mtp)
string(REPLACE ";" " " WIDE "${WIDE}")
add_test(NAME mpi_ref_wide COMMAND sh -c "${DSV3} -t 2 ${WIDE} --output ${MPI_T}/wide.np1.safetensors")
set_tests_properties(mpi_wide_input PROPERTIES FIXTURES_SETUP mpi_wide_input)
set_tests_properties(mpi_ref_wide PROPERTIES FIXTURES_REQUIRED mpi_wide_input FIXTURES_SETUP mpi_ref_wide ${MPI_TEST_PROPS})
foreach(cfg "4;vader" "2;tcp")
  list(GET cfg 0 np)
  list(GET cfg 1 btl)
  add_test(NAME mpi_logits_wide_np${np}_${btl}
    COMMAND sh -c "rm -f ${MPI_T}/wide.np${np}.safetensors && ${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 ${WIDE} --output ${MPI_T}/wide.np${np}.safetensors && cmp ${MPI_T}/wide.np1.safetensors ${MPI_T}/wide.np${np}.safetensors && echo bit-identical")
  set_tests_properties(mpi_logits_wide_np${np}_${btl} PROPERTIES FIXTURES_REQUIRED mpi_ref_wide ${MPI_TEST_PROPS}
                       PASS_REGULAR_EXPRESSION "bit-identical")
endforeach()

# The bundled model (8 routed experts, a tokenizer): perplexity of a Brown
# excerpt and a greedy text continuation, identical to one process.
set(BROWN_TEXT ${MPI_T}/brown-4k.txt)  # the first 4 KB of the held-out excerpt
file(READ ${CMAKE_CURRENT_SOURCE_DIR}/data/brown-validation-excerpt.txt BROWN_ALL)
string(SUBSTRING "${BROWN_ALL}" 0 4000 BROWN_4K)
file(WRITE ${BROWN_TEXT} "${BROWN_4K}")
foreach(cfg "2;vader" "4;tcp")
  list(GET cfg 0 np)
  list(GET cfg 1 btl)
  add_test(NAME mpi_perplexity_np${np}_${btl}
    COMMAND sh -c "a=$(${DSV3} -t 2 perplexity -q -c 256 --file ${BROWN_TEXT}) && b=$(${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 perplexity -q -c 256 --file ${BROWN_TEXT}) && test -n \"$a\" && test \"$a\" = \"$b\" && echo \"identical: $b\"")
  set_tests_properties(mpi_perplexity_np${np}_${btl} PROPERTIES ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION "identical: perplexity=[0-9]")
  add_test(NAME mpi_run_text_np${np}_${btl}
    COMMAND sh -c "a=$(${DSV3} -t 2 run -q --prompt 'The jury said' -n 48 --temperature 0) && b=$(${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 run -q --prompt 'The jury said' -n 48 --temperature 0) && test -n \"$a\" && test \"$a\" = \"$b\" && echo \"identical: $b\"")
  set_tests_properties(mpi_run_text_np${np}_${btl} PROPERTIES ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION "identical: .")
endforeach()

# A GGUF checkpoint (Q8_0, converted here): foreign experts dropped after
# binding; -np 3 over 12 experts, identical to one process.
add_test(NAME mpi_gguf_setup COMMAND sh -c
  "${DSV3} convert -q --force --to gguf --type q8_0 ${G}/v2lite_tiny_bf16 ${MPI_T}/v2.gguf && ${DSV3} -t 2 logits -m ${MPI_T}/v2.gguf --input ${G}/v2lite_tiny_bf16/golden.safetensors --prefill 7 --output ${MPI_T}/v2.gguf.np1.safetensors")
set_tests_properties(mpi_gguf_setup PROPERTIES FIXTURES_SETUP mpi_gguf ${MPI_TEST_PROPS})
add_test(NAME mpi_logits_gguf_np3
  COMMAND sh -c "${MPI_RUN} 3 vader ${DSV3} -t 1 logits -m ${MPI_T}/v2.gguf --input ${G}/v2lite_tiny_bf16/golden.safetensors --prefill 7 --output ${MPI_T}/v2.gguf.np3.safetensors && cmp ${MPI_T}/v2.gguf.np1.safetensors ${MPI_T}/v2.gguf.np3.safetensors && echo bit-identical")
set_tests_properties(mpi_logits_gguf_np3 PROPERTIES FIXTURES_REQUIRED mpi_gguf ${MPI_TEST_PROPS} PASS_REGULAR_EXPRESSION "bit-identical")

# Two "hosts": two network namespaces joined by a veth pair, one rank in
# each, TCP over the link (mpi_netns.sh; skipped where namespaces cannot be
# made). The logits equal one process's, bit for bit.
set(netns_out ${MPI_T}/netns_v3_tiny_fp8.decode.safetensors)
add_test(NAME mpi_netns_logits_v3_tiny_fp8_decode
  COMMAND sh -c "rm -f ${netns_out} && ${CMAKE_CURRENT_SOURCE_DIR}/mpi_netns.sh ${DSV3} -t 1 logits -m ${G}/v3_tiny_fp8 --input ${G}/v3_tiny_fp8/golden.safetensors --prefill 7 --mtp --output ${netns_out} && cmp ${MPI_T}/v3_tiny_fp8.decode.np1.safetensors ${netns_out} && echo bit-identical")
set_tests_properties(mpi_netns_logits_v3_tiny_fp8_decode PROPERTIES FIXTURES_REQUIRED mpi_ref_v3_tiny_fp8_decode
                     ${MPI_TEST_PROPS} SKIP_RETURN_CODE 77
                     PASS_REGULAR_EXPRESSION "netns: 2 hosts over a veth pair, exit 0, [1-9][0-9]* bytes.*bit-identical")
