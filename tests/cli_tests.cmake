
# --- dsv3 train (src/train): synthetic token data from make_token_data ------
set(TRAIN_CLI ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_cli)
set(TRAIN_CFG ${CMAKE_CURRENT_BINARY_DIR}/train_cli_config.json)
file(WRITE ${TRAIN_CFG} [=[{"model_type": "deepseek_v3", "vocab_size": 64, "hidden_size": 32,
 "intermediate_size": 48, "moe_intermediate_size": 16, "num_hidden_layers": 2, "num_nextn_predict_layers": 1,
 "num_attention_heads": 2, "n_shared_experts": 1, "n_routed_experts": 8, "kv_lora_rank": 16, "q_lora_rank": 24,
 "qk_rope_head_dim": 4, "v_head_dim": 8, "qk_nope_head_dim": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
 "n_group": 4, "topk_group": 2, "max_position_embeddings": 64, "bos_token_id": 0, "eos_token_id": 1}]=])
string(REPLACE "\"hidden_size\": 32" "\"hidden_size\": 48" TRAIN_CFG_OTHER_TEXT "{\"model_type\": \"deepseek_v3\", \"vocab_size\": 64, \"hidden_size\": 32, \"intermediate_size\": 48, \"moe_intermediate_size\": 16, \"num_hidden_layers\": 2, \"num_nextn_predict_layers\": 1, \"num_attention_heads\": 2, \"n_shared_experts\": 1, \"n_routed_experts\": 8, \"kv_lora_rank\": 16, \"q_lora_rank\": 24, \"qk_rope_head_dim\": 4, \"v_head_dim\": 8, \"qk_nope_head_dim\": 8, \"num_experts_per_tok\": 2, \"first_k_dense_replace\": 1, \"n_group\": 4, \"topk_group\": 2, \"max_position_embeddings\": 64}")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/train_cli_config_other.json "${TRAIN_CFG_OTHER_TEXT}")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/train_cli_options.json
     "{\"batch_size\": 4, \"seq_len\": 24, \"warmup_steps\": 4, \"log_every\": 4, \"eval_windows\": 8, \"steps\": 100}")
set(TRAIN_ARGS train --model-config ${TRAIN_CFG} --batch-size 4 --seq-len 24 --warmup-steps 4 --log-every 4
    --eval-windows 8)
add_test(NAME train_cli_clean COMMAND ${CMAKE_COMMAND} -E rm -rf ${TRAIN_CLI})
add_test(NAME train_cli_data COMMAND make_token_data ${TRAIN_CLI}/data --docs 120)
foreach(kind empty bad-id small-vocab)
  add_test(NAME train_cli_data_${kind} COMMAND make_token_data ${TRAIN_CLI}/data_${kind} --kind ${kind} --docs 20)
endforeach()
set_tests_properties(train_cli_clean PROPERTIES FIXTURES_SETUP train_cli_clean)
set_tests_properties(train_cli_data train_cli_data_empty train_cli_data_bad-id train_cli_data_small-vocab
                     PROPERTIES FIXTURES_REQUIRED train_cli_clean FIXTURES_SETUP train_cli_data)
add_test(NAME train_cli_run COMMAND dsv3 -t 1 ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/out --steps 12)
set_tests_properties(train_cli_run PROPERTIES FIXTURES_REQUIRED train_cli_data FIXTURES_SETUP train_cli_ckpt
  PASS_REGULAR_EXPRESSION "step 4/12  loss [0-9.]+  mtp [0-9.]+  bal [0-9.e+-]+  lr [0-9.e+-]+  gnorm [0-9.]+  [0-9]+ tok/s  [0-9.]+ GFLOP/s  eta [0-9]+m[0-9]+s.*final step=12 train_loss=[0-9.]+ val_loss=[0-9.]+ max_vio=[0-9.]+")
add_test(NAME train_cli_checkpoint_runs COMMAND dsv3 -t 1 run -q -m ${TRAIN_CLI}/out --prompt-ids "2 7 9" -n 5)
set_tests_properties(train_cli_checkpoint_runs PROPERTIES FIXTURES_REQUIRED train_cli_ckpt
  PASS_REGULAR_EXPRESSION "^[0-9]+( [0-9]+)*\n$")
add_test(NAME train_cli_json_options COMMAND dsv3 -t 1 train --config ${CMAKE_CURRENT_BINARY_DIR}/train_cli_options.json
         --model-config ${TRAIN_CFG} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/out_json --steps 6 --precision fp8)
set_tests_properties(train_cli_json_options PROPERTIES FIXTURES_REQUIRED train_cli_data
  PASS_REGULAR_EXPRESSION "precision fp8.*4 x 24 tokens.*final step=6 ")
function(train_cli_error name regex)
  add_test(NAME train_cli_error_${name}
           COMMAND ${CMAKE_COMMAND} "-DCMD=$<TARGET_FILE:dsv3>;-t;1;${ARGN}" "-DREGEX=${regex}"
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/expect_error.cmake)
  set_tests_properties(train_cli_error_${name} PROPERTIES FIXTURES_REQUIRED "train_cli_data;train_cli_ckpt")
endfunction()
train_cli_error(missing_data "nowhere: data directory does not exist"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/nowhere --out ${TRAIN_CLI}/e1 --steps 2)
train_cli_error(empty_data "'train' split is empty"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data_empty --out ${TRAIN_CLI}/e2 --steps 2)
train_cli_error(bad_token_id "train-00000.bin: token 5 has id 64, outside the model's vocabulary of 64"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data_bad-id --out ${TRAIN_CLI}/e3 --steps 2)
train_cli_error(vocab_mismatch "vocab_size 128 but the model config has vocab_size 64"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data_small-vocab --out ${TRAIN_CLI}/e4 --steps 2)
train_cli_error(overwrite "already holds a training checkpoint; pass --resume"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/out --steps 2)
train_cli_error(resume_other_shape "has 32 for 'hidden_size' but the model config gives 48"
                ${TRAIN_ARGS} --model-config ${CMAKE_CURRENT_BINARY_DIR}/train_cli_config_other.json
                --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/out --steps 20 --resume)
train_cli_error(nan_loss "step [0-9]+: the (loss|gradient norm) is not finite; stopping \\(the last good checkpoint \\(step 1\\)"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/e5 --steps 5 --lr 1e30 --warmup-steps 0
                --save-every 1)
train_cli_error(bad_precision "--precision must be fp32, bf16 or fp8 \\(got 'fp16'\\)"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/e6 --steps 2 --precision fp16)
train_cli_error(bad_number "--lr: 'fast' is not a number"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/e7 --steps 2 --lr fast)
