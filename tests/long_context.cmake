# Long-context tests (issue 17): the trainer's blocked attention and YaRN
# against the engine; the needle-in-a-haystack command.
dsv3_test(long_context_train_test long_context_train_test.cc)
target_link_libraries(long_context_train_test PRIVATE dsv3_train)

dsv3_test(niah_test niah_test.cc)

# dsv3 niah on the bundled model: a grid with one row per depth and one
# column per length, and an SVG with one cell each; flag errors name the flag.
set(NIAH_DSV3 $<TARGET_FILE:dsv3>)
set(NIAH_FAIL ${CMAKE_CURRENT_SOURCE_DIR}/expect_fail.sh)
set(NIAH_FILLER ${CMAKE_CURRENT_SOURCE_DIR}/data/brown-validation-excerpt.txt)
set(NIAH_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/niah)
file(MAKE_DIRECTORY ${NIAH_TMP})
add_test(NAME cli_niah_grid_and_svg
  COMMAND sh -c "rm -f ${NIAH_TMP}/grid.svg && ${NIAH_DSV3} -t 2 niah --filler ${NIAH_FILLER} --lengths 64,160 --depths 0,50,100 --trials 2 --svg ${NIAH_TMP}/grid.svg > ${NIAH_TMP}/grid.txt && cat ${NIAH_TMP}/grid.txt && test $(grep -cE '^ +(0|50|100)% +[0-9]+% +[0-9]+%$' ${NIAH_TMP}/grid.txt) = 3 && grep -q '^niah: mean=[01][.][0-9]* cells=6 trials=2$' ${NIAH_TMP}/grid.txt && test $(grep -c 'width=\"56\" height=\"26\" fill=\"#' ${NIAH_TMP}/grid.svg) = 6 && tail -1 ${NIAH_TMP}/grid.svg | grep -q '</svg>'")
add_test(NAME cli_niah_same_seed_same_grid
  COMMAND sh -c "a=$(${NIAH_DSV3} -t 2 niah --filler ${NIAH_FILLER} --lengths 48 --depths 0,100 --trials 3 --seed 7 2>/dev/null) && b=$(${NIAH_DSV3} -t 2 niah --filler ${NIAH_FILLER} --lengths 48 --depths 0,100 --trials 3 --seed 7 2>/dev/null) && test -n \"$a\" && test \"$a\" = \"$b\"")
# --show-misses: one stderr line per missed pass key with the model's answer;
# misses plus found passkeys make the trials.
add_test(NAME cli_niah_show_misses
  COMMAND sh -c "${NIAH_DSV3} -t 2 niah --filler ${NIAH_FILLER} --lengths 64 --depths 0 --trials 3 --show-misses > ${NIAH_TMP}/misses.out 2> ${NIAH_TMP}/misses.err; cat ${NIAH_TMP}/misses.err; m=$(grep -c 'niah: missed length 64 depth 0% trial [0-2]: pass key [0-9][0-9][0-9][0-9][0-9], answer \"' ${NIAH_TMP}/misses.err); f=$(sed -n 's/^niah: mean=\\([0-9.]*\\) .*/\\1/p' ${NIAH_TMP}/misses.out); test $(awk -v m=$m -v f=$f 'BEGIN { print m + int(f * 3 + 0.5) }') = 3")
add_test(NAME cli_niah_write_data
  COMMAND sh -c "rm -rf ${NIAH_TMP}/data && ${NIAH_DSV3} niah --write-data ${NIAH_TMP}/data --filler ${NIAH_FILLER} --max-length 80 --episodes 64 && grep -q '\"format\": \"dsv3-tokens-v1\"' ${NIAH_TMP}/data/data.json && grep -q '\"documents\": 2' ${NIAH_TMP}/data/data.json")
add_test(NAME cli_niah_bad_lengths COMMAND ${NIAH_FAIL} "--lengths: 'x' is not a number" ${NIAH_DSV3} niah --filler ${NIAH_FILLER} --lengths 64,x)
add_test(NAME cli_niah_short_length COMMAND ${NIAH_FAIL} "--lengths: 5 must be an integer >= [0-9]+" ${NIAH_DSV3} niah --filler ${NIAH_FILLER} --lengths 5)
add_test(NAME cli_niah_too_long COMMAND ${NIAH_FAIL} "--lengths: 5000 tokens plus [0-9]+ answer tokens exceed the model's max_position_embeddings 1024" ${NIAH_DSV3} niah --filler ${NIAH_FILLER} --lengths 5000)
add_test(NAME cli_niah_bad_depth COMMAND ${NIAH_FAIL} "--depths: 101 is outside" ${NIAH_DSV3} niah --filler ${NIAH_FILLER} --depths 0,101)
add_test(NAME cli_niah_no_filler COMMAND ${NIAH_FAIL} "--filler FILE is required" ${NIAH_DSV3} niah --lengths 64)
add_test(NAME cli_niah_missing_filler COMMAND ${NIAH_FAIL} "--filler: .*nonexistent.txt" ${NIAH_DSV3} niah --filler ${NIAH_TMP}/nonexistent.txt)
add_test(NAME cli_niah_bad_trials COMMAND ${NIAH_FAIL} "--trials must be in" ${NIAH_DSV3} niah --filler ${NIAH_FILLER} --trials 0)
add_test(NAME cli_niah_bad_max_length COMMAND ${NIAH_FAIL} "--max-length must be >=" ${NIAH_DSV3} niah --write-data ${NIAH_TMP}/bad --filler ${NIAH_FILLER} --max-length 3)

# An extension phase from the CLI: a base model trained at 32 positions,
# continued (--init-from) under a YaRN config at 128; the checkpoint carries
# the YaRN config. Past the base config's positions, a clear error.
set(LC_BASE_JSON "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 4096, \"hidden_size\": 16, \"intermediate_size\": 32, \"moe_intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_nextn_predict_layers\": 0, \"num_attention_heads\": 2, \"n_shared_experts\": 1, \"n_routed_experts\": 2, \"num_experts_per_tok\": 1, \"n_group\": 1, \"topk_group\": 1, \"first_k_dense_replace\": 1, \"kv_lora_rank\": 8, \"q_lora_rank\": null, \"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 8, \"v_head_dim\": 8, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000, \"bos_token_id\": 0, \"eos_token_id\": 1, \"tie_word_embeddings\": false")
file(WRITE ${NIAH_TMP}/base.json "${LC_BASE_JSON}, \"max_position_embeddings\": 32}")
file(WRITE ${NIAH_TMP}/yarn.json "${LC_BASE_JSON}, \"max_position_embeddings\": 128, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 32, \"beta_fast\": 32, \"beta_slow\": 1, \"mscale\": 1.0, \"mscale_all_dim\": 1.0}}")
add_test(NAME cli_long_context_extension_phase
  COMMAND sh -c "rm -rf ${NIAH_TMP}/ext && mkdir -p ${NIAH_TMP}/ext && cd ${NIAH_TMP}/ext && ${NIAH_DSV3} niah --write-data data --filler ${NIAH_FILLER} --max-length 120 --episodes 64 && ${NIAH_DSV3} -t 2 train --model-config ../base.json --data data --out base --steps 2 --batch-size 2 --seq-len 32 --warmup-steps 1 --eval-windows 2 && ${NIAH_DSV3} -t 2 train --model-config ../yarn.json --init-from base --data data --out phase1 --steps 2 --batch-size 1 --seq-len 128 --warmup-steps 1 --eval-windows 2 && grep -q '\"original_max_position_embeddings\": 32' phase1/config.json && ${NIAH_DSV3} niah -m phase1 --filler ${NIAH_FILLER} --lengths 100 --depths 0 --trials 1 && ${NIAH_FAIL} 'seq-len 128 exceeds the model.s max_position_embeddings 32' ${NIAH_DSV3} train --model-config ../base.json --init-from base --data data --out bad --steps 2 --seq-len 128")
