# ctest helper: runs CMD (a ;-list), expects a non-zero exit status and one
# stderr line "dsv3: error: ..." matching REGEX.
#   cmake -DCMD="a;b;c" -DREGEX="..." -P expect_error.cmake
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a failure, got exit 0\nstdout: ${out}\nstderr: ${err}")
endif()
if(NOT err MATCHES "^dsv3: error: [^\n]*\n$")
  message(FATAL_ERROR "expected one 'dsv3: error: ...' line on stderr, got:\n${err}")
endif()
if(NOT err MATCHES "${REGEX}")
  message(FATAL_ERROR "stderr does not match '${REGEX}':\n${err}")
endif()
