# `dsv3 serve` (and `chat`) under mpirun (issue 14): rank 0 serves, the other
# ranks replay its steps, each running attention for its own slots
# (data-parallel; the banner says so). At -np 2 and 4 over shared memory (vader) and TCP:
# greedy, seeded and 16 concurrent streamed completions identical to one
# process and to `dsv3 run`, SIGTERM to rank 0 ends every rank with status 0
# (mpi_serve_test.py same); MTP speculation once per transport; rank 1
# SIGKILLed mid-generation: every stream ends with an error event, a new
# request gets 503 or finds the server gone, the job exits non-zero within
# 10 s (mpi_serve_test.py kill); `chat` below. Needs mpi_tests.cmake and
# server_tests.cmake.
set(MPI_SERVE_ENV ${DSV3_SERVER_ENV} "DSV3_MPI_RUN=${MPI_RUN}" "OMP_WAIT_POLICY=passive")
foreach(np 2 4)
  foreach(btl vader tcp)
    foreach(mode same kill)
      add_test(NAME mpi_serve_${mode}_np${np}_${btl}
               COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_serve_test.py ${mode} ${np} ${btl})
    endforeach()
  endforeach()
  set(btl vader)
  if(np EQUAL 4)
    set(btl tcp)
  endif()
  add_test(NAME mpi_serve_spec_np${np}_${btl}
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_serve_test.py same ${np} ${btl} --spec mtp)
  set_tests_properties(mpi_serve_spec_np${np}_${btl} PROPERTIES ENVIRONMENT "${MPI_SERVE_ENV}" TIMEOUT 300
                       PASS_REGULAR_EXPRESSION "^ok: ${np} ranks")
  foreach(btl vader tcp)
    set_tests_properties(mpi_serve_same_np${np}_${btl} mpi_serve_kill_np${np}_${btl} PROPERTIES
                         ENVIRONMENT "${MPI_SERVE_ENV}" TIMEOUT 300 PASS_REGULAR_EXPRESSION "^ok: ${np} ranks")
  endforeach()
endforeach()

# The same with replicated attention (every rank runs every token; the
# default is data-parallel: each rank its own slots).
add_test(NAME mpi_serve_replicated_np2_vader
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_serve_test.py same 2 vader --attention replicated)
set_tests_properties(mpi_serve_replicated_np2_vader PROPERTIES ENVIRONMENT "${MPI_SERVE_ENV}" TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "^ok: 2 ranks")

# Two micro-batches per MoE layer: the served text is still one process's.
add_test(NAME mpi_serve_micro_batches_np4_tcp
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_serve_test.py same 4 tcp --micro-batches 2)
set_tests_properties(mpi_serve_micro_batches_np4_tcp PROPERTIES ENVIRONMENT "${MPI_SERVE_ENV}" TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "^ok: 4 ranks")

# `dsv3 chat` with piped input (mpi_chat_test.py): greedy and seeded turns,
# /set, /save, /clear, /load (rank 0 reads the file, every rank parses its
# bytes) print exactly what one process prints; MTP speculation once.
foreach(cfg "2;vader" "2;tcp" "4;vader" "4;tcp")
  list(GET cfg 0 np)
  list(GET cfg 1 btl)
  add_test(NAME mpi_chat_np${np}_${btl} COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_chat_test.py ${np} ${btl})
  set_tests_properties(mpi_chat_np${np}_${btl} PROPERTIES ENVIRONMENT "${MPI_SERVE_ENV}" TIMEOUT 300
                       PASS_REGULAR_EXPRESSION "^ok: ${np} ranks")
endforeach()
add_test(NAME mpi_chat_spec_np2_vader
         COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/mpi_chat_test.py 2 vader --spec mtp)
set_tests_properties(mpi_chat_spec_np2_vader PROPERTIES ENVIRONMENT "${MPI_SERVE_ENV}" TIMEOUT 300
                     PASS_REGULAR_EXPRESSION "^ok: 2 ranks")

# A start-up failure on rank 0 after the model is loaded (the address cannot
# be bound): one error, rank 0's status on every rank, no hang.
add_test(NAME mpi_serve_bad_host
  COMMAND ${MPI_FAIL} 1 "cannot listen on 203.0.113.1" ${MPI_RUN} 2 tcp ${DSV3} -t 1 serve -m ${G}/v3_tiny_bf16 --host 203.0.113.1 --port 0 -q)
set_tests_properties(mpi_serve_bad_host PROPERTIES ${MPI_TEST_PROPS})
