# Tokenizer tests: gtest units, CLI error cases, and parity with the node
# references (tests/node; skipped with a message only when node is absent).
dsv3_test(tokenizer_test tokenizer/tokenizer_test.cc tokenizer/chat_test.cc tokenizer/bpe_trainer_test.cc)
target_link_libraries(tokenizer_test PRIVATE dsv3_tokenizer)
target_compile_definitions(tokenizer_test PRIVATE DSV3_TOKENIZER_TEST_DIR="${CMAKE_CURRENT_SOURCE_DIR}/tokenizer"
                                                  DSV3_NODE_DIR="${CMAKE_CURRENT_SOURCE_DIR}/node")

add_executable(tokenizer_parity_check tokenizer/parity_check.cc)
target_link_libraries(tokenizer_parity_check PRIVATE dsv3_tokenizer)
foreach(mode brown stress chat trained)
  add_test(NAME tokenizer_parity_${mode}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/parity.sh ${mode} ${CMAKE_CURRENT_SOURCE_DIR}/node
                   $<TARGET_FILE:dsv3> $<TARGET_FILE:tokenizer_parity_check>
                   ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_parity/${mode})
  set_tests_properties(tokenizer_parity_${mode} PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()

include(${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/cli_tests.cmake)
