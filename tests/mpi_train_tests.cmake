# Data-parallel training under mpirun (issue 15): -np 2 and 4 over shared
# memory (btl vader) and TCP, fp32 / bf16 / fp8, give the model, the
# optimizer state and every logged value (losses, MTP and balance losses,
# gradient norms, validation loss, MaxVio) bit-identical to one process with
# the same --grad-accum (mpi_train_compare.sh); resume across rank counts
# 1 -> 2 -> 1 continues the uninterrupted run bit for bit; a killed rank ends
# the job within 10 s and the run resumes (mpi_train_kill.sh); a NaN loss,
# a bad data path on one rank and mismatched flags end every rank with one
# clear message. The tiny model and data of cli_tests.cmake (TRAIN_CFG).
set(MPI_TT ${CMAKE_CURRENT_BINARY_DIR}/tmp/mpi_train)
set(MPI_TRAIN_CMP ${CMAKE_CURRENT_SOURCE_DIR}/mpi_train_compare.sh)
set(MPI_TRAIN_ARGS train --model-config ${TRAIN_CFG} --data ${MPI_TT}/data --batch-size 4 --seq-len 24
    --warmup-steps 4 --log-every 2 --eval-windows 12 --eval-every 3 --save-every 2 --steps 6)
string(REPLACE ";" " " MPI_TRAIN_ARGS_TEXT "${MPI_TRAIN_ARGS}")
set(MPI_TRAIN_PROPS ENVIRONMENT "OMP_WAIT_POLICY=passive" TIMEOUT 120)

add_test(NAME mpi_train_data COMMAND sh -c "rm -rf ${MPI_TT} && mkdir -p ${MPI_TT} && $<TARGET_FILE:make_token_data> ${MPI_TT}/data --docs 120")
set_tests_properties(mpi_train_data PROPERTIES FIXTURES_SETUP mpi_train_data ${MPI_TRAIN_PROPS})

# References: one process, two threads (micro-batches run in parallel).
foreach(prec fp32 bf16 fp8)
  foreach(accum 2 4)
    set(ref ${MPI_TT}/ref_${prec}_${accum})
    add_test(NAME mpi_train_ref_${prec}_${accum}
             COMMAND sh -c "rm -rf ${ref} && ${DSV3} -t 2 ${MPI_TRAIN_ARGS_TEXT} --precision ${prec} --grad-accum ${accum} --out ${ref}")
    set_tests_properties(mpi_train_ref_${prec}_${accum} PROPERTIES FIXTURES_REQUIRED mpi_train_data
                         FIXTURES_SETUP mpi_train_ref_${prec}_${accum} ${MPI_TRAIN_PROPS})
  endforeach()
  # --grad-accum N over N ranks (one micro-batch each) on both transports,
  # data-parallel and expert-parallel (--parallel expert: the routed experts
  # split over the ranks, token rows exchanged with them; tests mpi_train_ep_*).
  foreach(np 2 4)
    foreach(btl vader tcp)
      foreach(mode data expert)
        if(mode STREQUAL "expert")
          set(tag ep_)
          set(pass "expert parallel: the 8 routed experts of each MoE layer split over ${np} ranks.*expert exchanges per step.*bit-identical: 6 steps")
        else()
          set(tag "")
          set(pass "bit-identical: 6 steps")
        endif()
        set(name mpi_train_${tag}${prec}_np${np}_${btl})
        set(out ${MPI_TT}/${tag}${prec}_np${np}_${btl})
        add_test(NAME ${name} COMMAND sh -c "rm -rf ${out} && ${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --precision ${prec} --grad-accum ${np} --parallel ${mode} --out ${out} && ${MPI_TRAIN_CMP} ${MPI_TT}/ref_${prec}_${np} ${out}")
        set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED mpi_train_ref_${prec}_${np} ${MPI_TRAIN_PROPS}
                             PASS_REGULAR_EXPRESSION "${pass}")
      endforeach()
    endforeach()
  endforeach()
endforeach()

# Two micro-batches per rank (--grad-accum 4 over 2 ranks); the run also
# reports its ZeRO-1 optimizer memory (about half of one process's).
add_test(NAME mpi_train_fp32_np2_accum4
  COMMAND sh -c "rm -rf ${MPI_TT}/np2_accum4 && ${MPI_RUN} 2 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 4 --out ${MPI_TT}/np2_accum4 && ${MPI_TRAIN_CMP} ${MPI_TT}/ref_fp32_4 ${MPI_TT}/np2_accum4")
set_tests_properties(mpi_train_fp32_np2_accum4 PROPERTIES FIXTURES_REQUIRED mpi_train_ref_fp32_4 ${MPI_TRAIN_PROPS}
  PASS_REGULAR_EXPRESSION "data parallel: 2 ranks x 2 micro-batches each .*ZeRO-1: AdamW moments 0.19 MiB on the largest rank \\(0.37 MiB in one process\\).*bit-identical: 6 steps")

# Resume across rank counts: 1 process to step 2, 2 ranks to step 4, 1
# process to step 6 = the uninterrupted run (steps, model, optimizer state).
set(r121 ${MPI_TT}/resume121)
add_test(NAME mpi_train_resume_1_2_1
  COMMAND sh -c "rm -rf ${r121} && ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --out ${r121} --stop-at 2 && ${MPI_RUN} 2 tcp ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --out ${r121} --resume --stop-at 4 && ${DSV3} -t 2 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --out ${r121} --resume && ${MPI_TRAIN_CMP} --steps-only ${MPI_TT}/ref_fp32_2 ${r121}")
set_tests_properties(mpi_train_resume_1_2_1 PROPERTIES FIXTURES_REQUIRED mpi_train_ref_fp32_2 ${MPI_TRAIN_PROPS}
                     PASS_REGULAR_EXPRESSION "bit-identical: 6 steps")

# A killed rank: every rank gone within 10 s, the checkpoint whole, resume
# over 2 ranks bit-identical to one uninterrupted process.
foreach(np_btl 2_vader 4_tcp)
  string(REPLACE "_" ";" pair ${np_btl})
  list(GET pair 0 np)
  list(GET pair 1 btl)
  add_test(NAME mpi_train_kill_np${np}_${btl}
    COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi_train_kill.sh ${np} ${btl} ${MPI_TT}/kill_${np_btl} ${DSV3} ${MPI_TRAIN_ARGS}
            --grad-accum ${np} --save-every 1 --steps 5000 --eval-every 0)
  set_tests_properties(mpi_train_kill_np${np}_${btl} PROPERTIES FIXTURES_REQUIRED mpi_train_data ${MPI_TRAIN_PROPS}
                       PASS_REGULAR_EXPRESSION "^ok: rank 1 killed")
endforeach()

# Failures every rank agrees on: rank 0 prints one message naming the step
# (and the micro-batch's rank), the last good checkpoint stays.
add_test(NAME mpi_train_nan_np2
  COMMAND ${MPI_FAIL} 1 "step [0-9]+: the (loss of micro-batch [0-9]+ \\(rank [01]\\)|gradient norm) is not finite; stopping \\(the last good checkpoint \\(step 1\\)"
          ${MPI_RUN} 2 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 2 --out ${MPI_TT}/nan --lr 1e30 --warmup-steps 0 --save-every 1)
add_test(NAME mpi_train_bad_data_rank1
  COMMAND ${MPI_FAIL} 1 "rank 1: .*nowhere: data directory does not exist"
          ${MPI_RUN} 1 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 2 --out ${MPI_TT}/bad1
          : -np 1 ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 2 --out ${MPI_TT}/bad1 --data ${MPI_TT}/nowhere)
add_test(NAME mpi_train_flags_differ
  COMMAND ${MPI_FAIL} 1 "rank 1 was given other training options or another model config than rank 0"
          ${MPI_RUN} 1 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 2 --out ${MPI_TT}/bad2
          : -np 1 ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 2 --out ${MPI_TT}/bad2 --seed 7)
add_test(NAME mpi_train_accum_not_multiple
  COMMAND ${MPI_FAIL} 1 "--grad-accum 3 is not a multiple of the 2 ranks"
          ${MPI_RUN} 2 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 3 --out ${MPI_TT}/bad3)
set_tests_properties(mpi_train_nan_np2 mpi_train_bad_data_rank1 mpi_train_flags_differ mpi_train_accum_not_multiple
                     PROPERTIES FIXTURES_REQUIRED mpi_train_data ${MPI_TRAIN_PROPS} PASS_REGULAR_EXPRESSION "^ok \\(exit")

# Recipe variants stay bit-identical: BF16 moments with the classic aux
# loss; only the MTP layer trained on the main model's distribution, from a
# trained checkpoint (frozen tensors have no owner range).
set(var_bf16 --bf16-moments --balance aux-loss --grad-accum 2)
set(var_mtp --init-from ${MPI_TT}/ref_fp32_2 --trainable mtp --mtp-targets main-probs --grad-accum 4)
foreach(var bf16 mtp)
  string(REPLACE ";" " " var_args "${var_${var}}")
  set(out ${MPI_TT}/var_${var})
  add_test(NAME mpi_train_variant_${var}_np2
    COMMAND sh -c "rm -rf ${out}_ref ${out} && ${DSV3} -t 2 ${MPI_TRAIN_ARGS_TEXT} ${var_args} --out ${out}_ref && ${MPI_RUN} 2 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} ${var_args} --out ${out} && ${MPI_TRAIN_CMP} ${out}_ref ${out}")
  set_tests_properties(mpi_train_variant_${var}_np2 PROPERTIES FIXTURES_REQUIRED "mpi_train_data;mpi_train_ref_fp32_2"
                       ${MPI_TRAIN_PROPS} PASS_REGULAR_EXPRESSION "bit-identical: 6 steps")
endforeach()

# 100 steps (the issue's length), with the recipe variants: BF16 moments and
# the classic aux loss over 4 ranks on TCP, FP8 with the aux-free bias over
# 2 ranks on shared memory; every step, the MaxVio of each evaluation, the
# weights and the optimizer state bit-identical.
set(ep100_a 4 tcp --precision fp32 --bf16-moments --balance aux-loss)
set(ep100_b 2 vader --precision fp8)
foreach(v a b)
  list(GET ep100_${v} 0 np)
  list(GET ep100_${v} 1 btl)
  list(SUBLIST ep100_${v} 2 -1 flags)
  string(REPLACE ";" " " flags "${flags}")
  set(out ${MPI_TT}/ep100_${v})
  set(args "${MPI_TRAIN_ARGS_TEXT} --steps 100 --save-every 0 --eval-every 25 --log-every 1 --grad-accum ${np} ${flags}")
  add_test(NAME mpi_train_ep_100_steps_${v}
    COMMAND sh -c "rm -rf ${out} ${out}_ref && ${DSV3} -t 2 ${args} --out ${out}_ref && ${MPI_RUN} ${np} ${btl} ${DSV3} -t 1 ${args} --parallel expert --out ${out} && ${MPI_TRAIN_CMP} ${out}_ref ${out}")
  set_tests_properties(mpi_train_ep_100_steps_${v} PROPERTIES FIXTURES_REQUIRED mpi_train_data ${MPI_TRAIN_PROPS}
                       PASS_REGULAR_EXPRESSION "bit-identical: 100 steps")
endforeach()

# Resume across rank counts and modes: 1 process, then 2 expert-parallel
# ranks, then 1 process = the uninterrupted run.
set(r1e1 ${MPI_TT}/resume_1_ep2_1)
add_test(NAME mpi_train_ep_resume_1_2_1
  COMMAND sh -c "rm -rf ${r1e1} && ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --out ${r1e1} --stop-at 2 && ${MPI_RUN} 2 tcp ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --parallel expert --out ${r1e1} --resume --stop-at 4 && ${DSV3} -t 2 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --out ${r1e1} --resume && ${MPI_TRAIN_CMP} --steps-only ${MPI_TT}/ref_fp32_2 ${r1e1}")
set_tests_properties(mpi_train_ep_resume_1_2_1 PROPERTIES FIXTURES_REQUIRED mpi_train_ref_fp32_2 ${MPI_TRAIN_PROPS}
                     PASS_REGULAR_EXPRESSION "bit-identical: 6 steps")

# A killed expert-parallel rank: every rank gone within 10 s, resume over 4
# expert-parallel ranks bit-identical to one uninterrupted process.
add_test(NAME mpi_train_ep_kill_np4_tcp
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/mpi_train_kill.sh 4 tcp ${MPI_TT}/kill_ep ${DSV3} ${MPI_TRAIN_ARGS}
          --grad-accum 4 --parallel expert --save-every 1 --steps 5000 --eval-every 0)
set_tests_properties(mpi_train_ep_kill_np4_tcp PROPERTIES FIXTURES_REQUIRED mpi_train_data ${MPI_TRAIN_PROPS}
                     PASS_REGULAR_EXPRESSION "^ok: rank 1 killed")

# Refusals on every rank: more than one micro-batch per rank.
add_test(NAME mpi_train_ep_accum_not_ranks
  COMMAND ${MPI_FAIL} 1 "--parallel expert runs one micro-batch per rank: --grad-accum must equal the number of ranks \\(2\\), got 4"
          ${MPI_RUN} 2 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 4 --parallel expert --out ${MPI_TT}/bad_ep)
set_tests_properties(mpi_train_ep_accum_not_ranks PROPERTIES FIXTURES_REQUIRED mpi_train_data ${MPI_TRAIN_PROPS}
                     PASS_REGULAR_EXPRESSION "^ok \\(exit")
add_test(NAME mpi_train_ep_more_ranks_than_experts
  COMMAND ${MPI_FAIL} 1 "--parallel expert: 9 ranks but the model has only 8 routed experts"
          ${MPI_RUN} 9 vader ${DSV3} -t 1 ${MPI_TRAIN_ARGS} --grad-accum 9 --parallel expert --out ${MPI_TT}/bad_ep9)
set_tests_properties(mpi_train_ep_more_ranks_than_experts PROPERTIES FIXTURES_REQUIRED mpi_train_data
                     ${MPI_TRAIN_PROPS} PASS_REGULAR_EXPRESSION "^ok \\(exit")

# Expert-parallel training across two "hosts" (network namespaces joined by
# a veth pair, mpi_netns.sh; skipped where namespaces cannot be made).
set(netns_train ${MPI_TT}/netns_ep)
add_test(NAME mpi_train_netns_ep_np2
  COMMAND sh -c "rm -rf ${netns_train} && ${CMAKE_CURRENT_SOURCE_DIR}/mpi_netns.sh ${DSV3} -t 1 ${MPI_TRAIN_ARGS_TEXT} --grad-accum 2 --parallel expert --out ${netns_train} && ${MPI_TRAIN_CMP} ${MPI_TT}/ref_fp32_2 ${netns_train}")
set_tests_properties(mpi_train_netns_ep_np2 PROPERTIES FIXTURES_REQUIRED mpi_train_ref_fp32_2 ${MPI_TRAIN_PROPS}
                     SKIP_RETURN_CODE 77
                     PASS_REGULAR_EXPRESSION "netns: 2 hosts over a veth pair, exit 0, [1-9][0-9]* bytes.*bit-identical: 6 steps")
