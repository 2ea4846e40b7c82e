# End-to-end tests of `dsv3 serve` (issue 7): each starts the real server on
# an ephemeral loopback port and talks HTTP to it with Python's standard
# library (tests/server/*.py); the web test drives Debian's chromium through
# chromedriver. Artefacts (the page screenshot) go to build/tests/tmp/server.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
set(DSV3_SERVER_ENV "DSV3_BIN=$<TARGET_FILE:dsv3>" "DSV3_GOLDEN=${DSV3_GOLDEN_DIR}"
    "DSV3_TEST_OUT=${CMAKE_CURRENT_BINARY_DIR}/tmp/server")
foreach(name api bad_input web)
  add_test(NAME server_${name} COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/test_${name}.py)
  set_tests_properties(server_${name} PROPERTIES ENVIRONMENT "${DSV3_SERVER_ENV}" TIMEOUT 300)
endforeach()

dsv3_test(server_unit_test server_unit_test.cc)
target_link_libraries(server_unit_test PRIVATE dsv3_server)
