# issue 14 planner: `dsv3 plan` arithmetic (gtest against hand-computed
# figures) and its CLI: DeepSeek-V3 FP8 on 8 nodes (the per-rank bytes
# `inspect --ranks 8` gives, the exchange's bytes per token and layer), and
# bad cluster files or flags giving one error naming the field, exit 1.
dsv3_test(planner_test planner_test.cc)
target_link_libraries(planner_test PRIVATE dsv3_planner)
set(PLAN_DIR ${CMAKE_CURRENT_SOURCE_DIR}/planner)
set(V3_CONFIG ${CMAKE_CURRENT_SOURCE_DIR}/configs/deepseek_v3.json)
add_test(NAME cli_plan_v3_8_nodes COMMAND ${DSV3} plan -m ${V3_CONFIG} --cluster ${PLAN_DIR}/cluster_8x100g.json --format fp8)
set_tests_properties(cli_plan_v3_8_nodes PROPERTIES PASS_REGULAR_EXPRESSION
  "per rank +23\\.127 GB replicated \\+ 83\\.168 GB routed experts.*exchange +602112 bytes per token.*\n +1 +8\\.0 .*\n +8 +57\\.4 .*\n +32 +163\\.3 .*\n +128 +251\\.6 ")
# Data-parallel attention (serve's mode): no gather in the exchange, KV on the rank running the sequence.
add_test(NAME cli_plan_v3_8_nodes_data_parallel
  COMMAND ${DSV3} plan -m ${V3_CONFIG} --cluster ${PLAN_DIR}/cluster_8x100g.json --format fp8 --attention data)
set_tests_properties(cli_plan_v3_8_nodes_data_parallel PROPERTIES PASS_REGULAR_EXPRESSION
  "on the rank running it.*exchange +401408 bytes per token.*3 collectives")
add_test(NAME cli_plan_bad_missing_field
  COMMAND ${FAIL} "missing_link\\.json: field 'link_bandwidth_gbits' is missing" ${DSV3} plan -m ${V3_CONFIG} --cluster ${PLAN_DIR}/missing_link.json)
add_test(NAME cli_plan_bad_negative_bandwidth
  COMMAND ${FAIL} "negative_membw\\.json: field 'memory_bandwidth_gbs' must be > 0 \\(got -300\\)" ${DSV3} plan -m ${V3_CONFIG} --cluster ${PLAN_DIR}/negative_membw.json)
add_test(NAME cli_plan_bad_format
  COMMAND ${FAIL} "--format: unknown weight format 'fp4'" ${DSV3} plan -m ${V3_CONFIG} --cluster ${PLAN_DIR}/cluster_8x100g.json --format fp4)
add_test(NAME cli_plan_bad_cluster_path
  COMMAND ${FAIL} "--cluster: cannot read" ${DSV3} plan -m ${V3_CONFIG} --cluster ${PLAN_DIR}/nonexistent.json)
