# End-to-end tests of the dsv3 binary: golden logits through the CLI, every
# subcommand on a golden checkpoint, and bad input giving one clean error.
add_executable(compare_logits compare_logits.cc)
target_link_libraries(compare_logits PRIVATE dsv3_io)

set(DSV3 $<TARGET_FILE:dsv3>)
set(FAIL ${CMAKE_CURRENT_SOURCE_DIR}/expect_fail.sh)
set(G ${DSV3_GOLDEN_DIR})
set(T ${CMAKE_CURRENT_BINARY_DIR}/tmp)

foreach(case v3_tiny_bf16 v3_tiny_fp8 v2lite_tiny_bf16)
  add_test(NAME cli_logits_${case}
    COMMAND sh -c "${DSV3} logits -m ${G}/${case} --input ${G}/${case}/golden.safetensors --output ${T}/${case}.out.safetensors --prefill 7 && $<TARGET_FILE:compare_logits> ${T}/${case}.out.safetensors ${G}/${case}/golden.safetensors logits")
endforeach()
foreach(case v3_tiny_bf16 v3_tiny_fp8)
  add_test(NAME cli_logits_mtp_${case}
    COMMAND sh -c "${DSV3} logits -m ${G}/${case} --input ${G}/${case}/golden.safetensors --output ${T}/${case}.mtp.safetensors --mtp && $<TARGET_FILE:compare_logits> ${T}/${case}.mtp.safetensors ${G}/${case}/golden.safetensors mtp_logits")
endforeach()

add_test(NAME cli_run_greedy COMMAND ${DSV3} run -q -m ${G}/v3_tiny_bf16 --prompt-ids "0 15 27" -n 8 --temperature 0)
set_tests_properties(cli_run_greedy PROPERTIES PASS_REGULAR_EXPRESSION "^[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+\n$")
add_test(NAME cli_run_sampled_seeded
  COMMAND sh -c "a=$(${DSV3} run -q -m ${G}/v3_tiny_fp8 --prompt-ids '0 1 2' -n 12 --temperature 1 --top-p 0.9 --seed 5); b=$(${DSV3} run -q -m ${G}/v3_tiny_fp8 --prompt-ids '0 1 2' -n 12 --temperature 1 --top-p 0.9 --seed 5); test -n \"$a\" && test \"$a\" = \"$b\"")
add_test(NAME cli_inspect_v3_config COMMAND ${DSV3} inspect -m ${CMAKE_CURRENT_SOURCE_DIR}/configs/deepseek_v3.json)
set_tests_properties(cli_inspect_v3_config PROPERTIES PASS_REGULAR_EXPRESSION "70272 bytes at BF16")
add_test(NAME cli_inspect_golden COMMAND ${DSV3} inspect -m ${G}/v3_tiny_fp8)
set_tests_properties(cli_inspect_golden PROPERTIES PASS_REGULAR_EXPRESSION "F8_E4M3 +[0-9]+ tensors")

# Bad input: one clear error line, exit status 1, never a crash.
add_test(NAME cli_bad_model_dir COMMAND ${FAIL} "nonexistent" ${DSV3} run -m ${T}/nonexistent --prompt-ids "1")
add_test(NAME cli_bad_token_id COMMAND ${FAIL} "token id 999" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "0 999")
add_test(NAME cli_bad_prompt_ids COMMAND ${FAIL} "prompt-ids.*'x3'" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "0 x3")
add_test(NAME cli_bad_empty_prompt COMMAND ${FAIL} "prompt is empty" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids " ")
add_test(NAME cli_bad_temperature COMMAND ${FAIL} "temperature" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "1" --temperature -2)
add_test(NAME cli_bad_context COMMAND ${FAIL} "max_position_embeddings" ${DSV3} run -m ${G}/v3_tiny_bf16 --prompt-ids "1" -n 100000)
add_test(NAME cli_bad_logits_input COMMAND ${FAIL} "no tensor named 'tokens'" ${DSV3} logits -m ${G}/v3_tiny_bf16 --input ${G}/v3_tiny_bf16/model.safetensors --output ${T}/x.safetensors)
add_test(NAME cli_bad_mtp COMMAND ${FAIL} "no MTP layer" ${DSV3} logits -m ${G}/v2lite_tiny_bf16 --input ${G}/v2lite_tiny_bf16/golden.safetensors --output ${T}/x.safetensors --mtp)
add_test(NAME cli_bad_model_type
  COMMAND sh -c "mkdir -p ${T}/badtype && echo '{\"model_type\":\"llama\"}' > ${T}/badtype/config.json && ${FAIL} \"model_type.*llama\" ${DSV3} inspect -m ${T}/badtype")
add_test(NAME cli_bad_truncated_checkpoint
  COMMAND sh -c "mkdir -p ${T}/trunc && cp ${G}/v3_tiny_bf16/config.json ${T}/trunc/ && head -c 100000 ${G}/v3_tiny_bf16/model.safetensors > ${T}/trunc/model.safetensors && ${FAIL} \"trunc/model.safetensors.*(past the end|truncated)\" ${DSV3} run -m ${T}/trunc --prompt-ids 1")

set(DSV3_CLI_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
file(MAKE_DIRECTORY ${DSV3_CLI_TMP})

# dsv3 convert: usage errors name the flag; a conversion prints its summary;
# a GGUF loads with --model; a failing write (ulimit -f, SIGXFSZ ignored)
# reports the write error and leaves no output file.
add_test(NAME cli_convert_bad_target COMMAND $<TARGET_FILE:dsv3> convert --to int4 ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/x)
set_tests_properties(cli_convert_bad_target PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --to: 'int4' is not bf16, fp8, gguf, w4a16 or w8a16")
# Weight-only int4 / int8 (compressed-tensors, issue 16): converted from FP8
# and from BF16, loaded and run; broken copies refused with the culprit named.
add_test(NAME cli_convert_w4a16_from_fp8_and_run COMMAND sh -c
  "$<TARGET_FILE:dsv3> convert --force --to w4a16 ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/w4 > ${DSV3_CLI_TMP}/w4.log 2>&1 && grep -q '(51 converted, 46 copied, 73 dropped)' ${DSV3_CLI_TMP}/w4.log && $<TARGET_FILE:dsv3> -t 2 run -q -m ${DSV3_CLI_TMP}/w4 --prompt-ids 0,15,27 -n 8 --temperature 0 --ignore-eos")
set_tests_properties(cli_convert_w4a16_from_fp8_and_run PROPERTIES FIXTURES_SETUP packed_w4
  PASS_REGULAR_EXPRESSION "^[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+\n")
add_test(NAME cli_convert_w8a16_and_run COMMAND sh -c
  "$<TARGET_FILE:dsv3> convert --force --to w8a16 ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 ${DSV3_CLI_TMP}/w8 && $<TARGET_FILE:dsv3> -t 2 run -q -m ${DSV3_CLI_TMP}/w8 --prompt-ids 0,15,27 -n 8 --temperature 0 --ignore-eos")
set_tests_properties(cli_convert_w8a16_and_run PROPERTIES PASS_REGULAR_EXPRESSION "\n[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+\n")
add_test(NAME cli_packed_bad_inputs COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/packed_int_bad.py ${DSV3_CLI_TMP}/w4 ${DSV3_CLI_TMP}/w4bad)
set_tests_properties(cli_packed_bad_inputs PROPERTIES FIXTURES_REQUIRED packed_w4 FIXTURES_SETUP packed_bad)
add_test(NAME cli_packed_no_scale COMMAND ${FAIL} "has no scale tensor 'model.layers.0.self_attn.o_proj.weight_scale'" $<TARGET_FILE:dsv3> run -q -m ${DSV3_CLI_TMP}/w4bad/no_scale --prompt-ids 1 -n 1)
add_test(NAME cli_packed_tiny_scale COMMAND ${FAIL} "o_proj.weight_scale' holds [0-9.e+-]+ .*float16 cannot hold exactly" $<TARGET_FILE:dsv3> run -q -m ${DSV3_CLI_TMP}/w4bad/tiny_scale --prompt-ids 1 -n 1)
add_test(NAME cli_packed_bad_group COMMAND ${FAIL} "group_size' must be a positive multiple of 32 \\(got 100\\)" $<TARGET_FILE:dsv3> run -q -m ${DSV3_CLI_TMP}/w4bad/bad_group --prompt-ids 1 -n 1)
set_tests_properties(cli_packed_no_scale cli_packed_tiny_scale cli_packed_bad_group PROPERTIES FIXTURES_REQUIRED packed_bad)
add_test(NAME cli_convert_bad_type COMMAND $<TARGET_FILE:dsv3> convert --to gguf --type q7_k ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/x.gguf)
set_tests_properties(cli_convert_bad_type PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --type: 'q7_k' is not one of f32, f16, bf16, q8_0, q4_0, .*q4_k_m, .*iq4_xs")
add_test(NAME cli_convert_pure_needs_gguf COMMAND $<TARGET_FILE:dsv3> convert --to bf16 --pure ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/pure)
set_tests_properties(cli_convert_pure_needs_gguf PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --pure applies to --to gguf only")
add_test(NAME cli_convert_fp8_to_bf16 COMMAND $<TARGET_FILE:dsv3> convert --force --to bf16 ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 ${DSV3_CLI_TMP}/bf16)
set_tests_properties(cli_convert_fp8_to_bf16 PROPERTIES PASS_REGULAR_EXPRESSION "97 out \\(73 converted, 24 copied, 73 dropped\\)")
add_test(NAME cli_convert_gguf_and_load COMMAND sh -c
  "$<TARGET_FILE:dsv3> convert -q --force --to gguf --type q8_0 ${DSV3_GOLDEN_DIR}/v2lite_tiny_bf16 ${DSV3_CLI_TMP}/v2.gguf && $<TARGET_FILE:dsv3> logits -m ${DSV3_CLI_TMP}/v2.gguf --input ${DSV3_GOLDEN_DIR}/v2lite_tiny_bf16/golden.safetensors --output ${DSV3_CLI_TMP}/v2.logits.safetensors")
set_tests_properties(cli_convert_gguf_and_load PROPERTIES PASS_REGULAR_EXPRESSION "wrote .*logits \\[2, 64, 300\\]")
add_test(NAME cli_convert_write_failure COMMAND sh -c
  "rm -f ${DSV3_CLI_TMP}/full.gguf; (trap '' XFSZ; ulimit -f 1024; exec $<TARGET_FILE:dsv3> convert -q --to gguf --type f32 ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 ${DSV3_CLI_TMP}/full.gguf); rc=$?; ls ${DSV3_CLI_TMP}/full.gguf* 2>/dev/null; echo exit=$rc")
set_tests_properties(cli_convert_write_failure PROPERTIES PASS_REGULAR_EXPRESSION "full.gguf.tmp: write failed: File too large\nexit=1\n$")
# dsv3 init and dsv3 bench end to end on a tiny config (fields, not speed),
# and their bad-input errors.
set(DSV3_CLI_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
add_test(NAME cli_init_tiny
         COMMAND dsv3 init --config ${DSV3_GOLDEN_DIR}/v3_tiny_fp8/config.json --out ${DSV3_CLI_TMP}/init_tiny
                 --shard-mb 1 --seed 3)
set_tests_properties(cli_init_tiny PROPERTIES FIXTURES_SETUP cli_tiny_checkpoint ENVIRONMENT "OMP_WAIT_POLICY=passive"
                     PASS_REGULAR_EXPRESSION "wrote .*init_tiny \\(fp8, seed 3")
add_test(NAME cli_bench_json_tiny
         COMMAND dsv3 -t 2 bench --model ${DSV3_CLI_TMP}/init_tiny -p 8 -n 2 -b 1,2 --reps 1 --membw-mb 8
                 --membw-reps 1 --head fp8 --kv fp8 --json)
set_tests_properties(cli_bench_json_tiny PROPERTIES FIXTURES_REQUIRED cli_tiny_checkpoint
                     ENVIRONMENT "OMP_WAIT_POLICY=passive"
                     PASS_REGULAR_EXPRESSION "\"prefill_tokens_per_s\": [0-9].*\"decode_tokens_per_s\": {[^}]*\"1\": [0-9][^}]*\"2\": [0-9]")
add_test(NAME cli_bench_text_tiny
         COMMAND dsv3 -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 -p 8 -n 2 -b 1 --reps 1 --membw-mb 8
                 --membw-reps 1)
set_tests_properties(cli_bench_text_tiny PROPERTIES
                     PASS_REGULAR_EXPRESSION "prefill 8 tokens: .* tok/s.*of the FMA peak.*of roofline.*flop bound.*of bound.*peak RSS")
add_test(NAME cli_bench_spec_tiny
         COMMAND dsv3 -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --spec mtp --draft-tokens 1,2 -p 8 -n 6
                 --reps 1 --json)
set_tests_properties(cli_bench_spec_tiny PROPERTIES PASS_REGULAR_EXPRESSION
  "\"baseline_tokens_per_s\": [0-9].*\"draft_tokens\": 1,.*\"same_output\": true.*\"acceptance_per_position\": \\[.*\"draft_tokens\": 2,.*\"same_output\": true.*\"draft_step\": {.*\"verify\": \\[.*\"tokens\": 3")
add_test(NAME cli_bench_spec_needs_mtp COMMAND dsv3 bench --model ${DSV3_GOLDEN_DIR}/v2lite_tiny_bf16 --spec mtp)
set_tests_properties(cli_bench_spec_needs_mtp PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: bench --spec mtp: the model has no MTP layer")
add_test(NAME cli_bench_bad_draft_tokens COMMAND dsv3 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --spec mtp --draft-tokens 1,x)
set_tests_properties(cli_bench_bad_draft_tokens PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --draft-tokens: 'x' is not a draft length")
add_test(NAME cli_bench_spec_draft_vocab
         COMMAND dsv3 -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --spec mtp --draft-tokens 2 --draft-vocab 100
                 -p 8 -n 6 --reps 1 --json)
set_tests_properties(cli_bench_spec_draft_vocab PROPERTIES PASS_REGULAR_EXPRESSION "\"draft_tokens\": 2,.*\"same_output\": true")
add_test(NAME cli_bench_bad_draft_vocab COMMAND dsv3 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --spec mtp --draft-vocab 385)
set_tests_properties(cli_bench_bad_draft_vocab PROPERTIES PASS_REGULAR_EXPRESSION
                     "dsv3: error: --draft-vocab 385 is outside \\[0, vocab_size 384\\]")
add_test(NAME cli_init_bad_dtype
         COMMAND dsv3 init --config ${DSV3_GOLDEN_DIR}/v3_tiny_fp8/config.json --out ${DSV3_CLI_TMP}/bad --dtype int4)
set_tests_properties(cli_init_bad_dtype PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --dtype must be fp8 or bf16")
add_test(NAME cli_bench_needs_model COMMAND dsv3 bench -p 8)
set_tests_properties(cli_bench_needs_model PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: bench: --model DIR is required")
add_test(NAME cli_bench_bad_head COMMAND dsv3 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_fp8 --head int4)
set_tests_properties(cli_bench_bad_head PROPERTIES PASS_REGULAR_EXPRESSION "dsv3: error: --head must be stored, bf16 or fp8")

# --- dsv3 train (src/train): synthetic token data from make_token_data ------
set(TRAIN_CLI ${CMAKE_CURRENT_BINARY_DIR}/tmp/train_cli)
set(TRAIN_CFG ${CMAKE_CURRENT_BINARY_DIR}/train_cli_config.json)
set(TRAIN_CFG_TEXT [=[{"model_type": "deepseek_v3", "vocab_size": 64, "hidden_size": 32,
 "intermediate_size": 48, "moe_intermediate_size": 16, "num_hidden_layers": 2, "num_nextn_predict_layers": 1,
 "num_attention_heads": 2, "n_shared_experts": 1, "n_routed_experts": 8, "kv_lora_rank": 16, "q_lora_rank": 24,
 "qk_rope_head_dim": 4, "v_head_dim": 8, "qk_nope_head_dim": 8, "num_experts_per_tok": 2, "first_k_dense_replace": 1,
 "n_group": 4, "topk_group": 2, "max_position_embeddings": 64, "bos_token_id": 0, "eos_token_id": 1}]=])
file(WRITE ${TRAIN_CFG} "${TRAIN_CFG_TEXT}")
string(REPLACE "\"hidden_size\": 32" "\"hidden_size\": 48" TRAIN_CFG_OTHER_TEXT "${TRAIN_CFG_TEXT}")
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
  add_test(NAME train_cli_error_${name} COMMAND ${FAIL} "${regex}" ${DSV3} -t 1 ${ARGN})
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
train_cli_error(bad_precision "error: --precision must be fp32, bf16 or fp8 \\(got 'fp16'\\)"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/e6 --steps 2 --precision fp16)
train_cli_error(bad_number "error: --lr: 'fast' is not a number"
                ${TRAIN_ARGS} --data ${TRAIN_CLI}/data --out ${TRAIN_CLI}/e7 --steps 2 --lr fast)

# --- dsv3 prepare-data: a tokenizer trained on the tokenizer stress file, its
# lines as documents, then training on them and generating text -------------
set(PREP_STRESS ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/stress.txt)
string(REPLACE "\"vocab_size\": 64" "\"vocab_size\": 300" PREP_CFG_TEXT "${TRAIN_CFG_TEXT}")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/train_cli_config_300.json "${PREP_CFG_TEXT}")
add_test(NAME prepare_data_cli_tokenizer
         COMMAND ${DSV3} train-tokenizer -q --vocab-size 300 --out ${TRAIN_CLI}/tok ${PREP_STRESS})
set_tests_properties(prepare_data_cli_tokenizer PROPERTIES FIXTURES_REQUIRED train_cli_clean FIXTURES_SETUP prep_tok)
add_test(NAME prepare_data_cli_lines
         COMMAND ${DSV3} prepare-data --tokenizer ${TRAIN_CLI}/tok --out ${TRAIN_CLI}/prep --doc-per-line
                 --val-fraction 0.1 ${PREP_STRESS})
set_tests_properties(prepare_data_cli_lines PROPERTIES FIXTURES_REQUIRED prep_tok FIXTURES_SETUP prep_data
  PASS_REGULAR_EXPRESSION "prepare-data: [0-9]+ documents \\([0-9]+ train, [0-9]+ validation\\), [0-9]+ \\+ [0-9]+ tokens, vocab 300, eos 1 -> ")
add_test(NAME prepare_data_cli_train
         COMMAND ${DSV3} -t 1 train --model-config ${CMAKE_CURRENT_BINARY_DIR}/train_cli_config_300.json
                 --data ${TRAIN_CLI}/prep --out ${TRAIN_CLI}/prep_out --steps 4 --batch-size 2 --seq-len 16
                 --eval-windows 2 --log-every 2)
set_tests_properties(prepare_data_cli_train PROPERTIES FIXTURES_REQUIRED prep_data FIXTURES_SETUP prep_ckpt
  PASS_REGULAR_EXPRESSION "final step=4 ")
add_test(NAME prepare_data_cli_checkpoint_has_tokenizer
         COMMAND ${DSV3} -t 1 run -q -m ${TRAIN_CLI}/prep_out --prompt "int main" -n 4)
set_tests_properties(prepare_data_cli_checkpoint_has_tokenizer PROPERTIES FIXTURES_REQUIRED prep_ckpt)
function(prep_error name regex)
  add_test(NAME prepare_data_cli_error_${name} COMMAND ${FAIL} "${regex}" ${DSV3} ${ARGN})
  set_tests_properties(prepare_data_cli_error_${name} PROPERTIES FIXTURES_REQUIRED "prep_tok;prep_data")
endfunction()
prep_error(missing_tokenizer "nowhere" prepare-data --tokenizer ${TRAIN_CLI}/nowhere --out ${TRAIN_CLI}/p1 ${PREP_STRESS})
prep_error(missing_file "missing.txt" prepare-data --tokenizer ${TRAIN_CLI}/tok --out ${TRAIN_CLI}/p2 ${TRAIN_CLI}/missing.txt)
prep_error(bad_fraction "val-fraction must be in \\(0, 1\\)"
           prepare-data --tokenizer ${TRAIN_CLI}/tok --out ${TRAIN_CLI}/p3 --val-fraction 1.5 ${PREP_STRESS})
prep_error(one_document "leaves no validation document among 1"
           prepare-data --tokenizer ${TRAIN_CLI}/tok --out ${TRAIN_CLI}/p4 ${PREP_STRESS})
file(WRITE ${TRAIN_CFG}.empty "\n  \n")
prep_error(empty_input "no text in the input files"
           prepare-data --tokenizer ${TRAIN_CLI}/tok --out ${TRAIN_CLI}/p5 ${TRAIN_CFG}.empty)
prep_error(tokenizer_larger_than_model "vocab_size 300 but the model config has vocab_size 64"
           -t 1 train --model-config ${TRAIN_CFG} --data ${TRAIN_CLI}/prep --out ${TRAIN_CLI}/p6 --steps 2)

# ===========================================================================
# Files and conversion hardening (docs/convert.md "What may be read and
# replaced"): only regular files are read as checkpoints, configs, indexes and
# tokenizers (a FIFO must not hang, /dev/zero must not be read forever); text
# files are bounded; `convert --force` replaces only regular files and
# directories dsv3 wrote, never a device, FIFO, symlink or foreign directory;
# SIGINT/SIGTERM leave no partial output; `tokenize -f DIR` and unreadable
# weights in `inspect` are errors; a .gguf model's embedded tokenizer is used.
# Each test works in its own directory under FILES_TMP; TIMEOUT catches hangs.
# ===========================================================================
set(FILES_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/files)
set(BROWN ${CMAKE_SOURCE_DIR}/models/brown-10m)

# files_test(NAME SETUP REGEX CMD...): runs SETUP (sh, in a fresh $d), then
# expects CMD to fail with one "dsv3: error:" line matching REGEX.
function(files_test name setup regex)
  string(JOIN " " cmd ${ARGN})
  add_test(NAME cli_files_${name} COMMAND sh -c
    "d=${FILES_TMP}/${name}; rm -rf $d && mkdir -p $d && cd $d && ${setup} && exec ${FAIL} '${regex}' ${cmd}")
  set_tests_properties(cli_files_${name} PROPERTIES TIMEOUT 30 SKIP_RETURN_CODE 77)
endfunction()

set(V3CFG "cp ${G}/v3_tiny_bf16/config.json m/")
files_test(fifo_weights "mkdir m && ${V3CFG} && mkfifo m/model.safetensors"
           "m/model.safetensors: is not a regular file \\(a FIFO\\)" ${DSV3} inspect -m m)
files_test(fifo_weights_run "mkdir m && ${V3CFG} && mkfifo m/model.safetensors"
           "m/model.safetensors: is not a regular file \\(a FIFO\\)" ${DSV3} run -m m --prompt-ids 1)
files_test(fifo_config "mkdir m && mkfifo m/config.json"
           "m/config.json: is not a regular file \\(a FIFO\\)" ${DSV3} inspect -m m)
files_test(fifo_config_run "mkdir m && mkfifo m/config.json"
           "m/config.json: is not a regular file \\(a FIFO\\)" ${DSV3} run -m m --prompt-ids 1)
files_test(zero_config "mkdir m && ln -s /dev/zero m/config.json"
           "m/config.json: is not a regular file \\(a character device\\)" ${DSV3} run -m m --prompt-ids 1)
files_test(zero_index "mkdir m && ${V3CFG} && ln -s /dev/zero m/model.safetensors.index.json"
           "model.safetensors.index.json: is not a regular file \\(a character device\\)" ${DSV3} run -m m --prompt-ids 1)
files_test(zero_tokenizer "mkdir t && ln -s /dev/zero t/tokenizer.json"
           "t/tokenizer.json: is not a regular file \\(a character device\\)" ${DSV3} tokenize --tokenizer t)
files_test(fifo_tokenizer_run "mkdir m && cp ${BROWN}/config.json ${BROWN}/model.safetensors m/ && mkfifo m/tokenizer.json"
           "m/tokenizer.json: is not a regular file \\(a FIFO\\)" ${DSV3} run -m m --prompt hi)
files_test(zero_convert_config "mkdir m && ln -s /dev/zero m/config.json"
           "m/config.json: is not a regular file" ${DSV3} convert --to gguf m out.gguf)
files_test(huge_config "mkdir m && truncate -s 300M m/config.json"
           "m/config.json: 314572800 bytes is more than the 256 MiB" ${DSV3} inspect -m m)
files_test(tokenize_dir "true" "error: --file: .*: is not a regular file \\(a directory\\)"
           ${DSV3} tokenize --tokenizer ${BROWN} -f .)
files_test(inspect_unreadable_weights
           "mkdir m && ${V3CFG} && head -c 100000 ${G}/v3_tiny_bf16/model.safetensors > m/model.safetensors"
           "weights: m/model.safetensors: .*past the end" ${DSV3} inspect -m m)

# --force onto things that are not dsv3's to replace; what they were is intact.
files_test(force_device "mknod nullcopy c 1 3 || exit 77"
           "nullcopy: is a character device; --force replaces only regular files"
           ${DSV3} convert -q --force --to gguf ${G}/v3_tiny_bf16 nullcopy)
files_test(force_fifo "mkfifo out.gguf" "out.gguf: is a FIFO; --force replaces only regular files"
           ${DSV3} convert -q --force --to gguf ${G}/v3_tiny_bf16 out.gguf)
files_test(force_symlink_dir "mkdir target && echo precious > target/keep && ln -s target out"
           "out: is a symbolic link; --force replaces only" ${DSV3} convert -q --force --to fp8 ${G}/v3_tiny_bf16 out)
files_test(force_symlink_file "echo precious > keep && ln -s keep out.gguf"
           "out.gguf: is a symbolic link; --force replaces only" ${DSV3} convert -q --force --to gguf ${G}/v3_tiny_bf16 out.gguf)
files_test(force_foreign_dir "mkdir out && echo precious > out/keep"
           "out: is a directory dsv3 did not write \\(no .dsv3-output inside\\)"
           ${DSV3} convert -q --force --to fp8 ${G}/v3_tiny_bf16 out)
add_test(NAME cli_files_force_left_intact COMMAND sh -c
  "set -e; d=${FILES_TMP}/intact; rm -rf $d && mkdir -p $d && cd $d
   mkfifo fifo.gguf; mkdir target; echo precious > target/keep; ln -s target link; mkdir foreign; echo precious > foreign/keep
   for out in fifo.gguf link foreign; do ! ${DSV3} convert -q --force --to gguf ${G}/v3_tiny_bf16 $out 2>/dev/null; done
   ! ${DSV3} convert -q --force --to fp8 ${G}/v3_tiny_bf16 link 2>/dev/null
   test -p fifo.gguf && test -L link && test \"$(cat target/keep)\" = precious && test \"$(ls -A target)\" = keep
   test \"$(cat foreign/keep)\" = precious && test -z \"$(ls -d *.tmp *.dsv3-partial 2>/dev/null)\" && echo intact")
set_tests_properties(cli_files_force_left_intact PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "intact")
# ...while a regular file and a directory dsv3 wrote are replaced.
add_test(NAME cli_files_force_replaces_own COMMAND sh -c
  "set -e; d=${FILES_TMP}/own; rm -rf $d && mkdir -p $d && cd $d
   echo old > out.gguf && ${DSV3} convert -q --force --to gguf ${G}/v3_tiny_bf16 out.gguf 2>/dev/null
   ${DSV3} inspect -m out.gguf >/dev/null
   ${DSV3} convert -q --to fp8 ${G}/v3_tiny_bf16 out 2>/dev/null && test -f out/.dsv3-output
   ${DSV3} convert -q --force --to fp8 ${G}/v3_tiny_bf16 out 2>/dev/null && ${DSV3} inspect -m out >/dev/null
   test -z \"$(ls -d out.* 2>/dev/null | grep -v out.gguf)\" && echo replaced")
set_tests_properties(cli_files_force_replaces_own PROPERTIES TIMEOUT 60 PASS_REGULAR_EXPRESSION "replaced")

# SIGINT/SIGTERM during convert (the bundled model, GGUF and safetensors
# outputs) and train (a checkpoint every step): no partial output remains.
add_test(NAME cli_files_signal_convert
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/signal_cleanup_test.sh ${DSV3} ${FILES_TMP}/signal_convert convert ${BROWN})
set(SIGNAL_TRAIN_CFG ${CMAKE_CURRENT_BINARY_DIR}/signal_train_config.json)
string(REPLACE "\"hidden_size\": 32" "\"hidden_size\": 256" SIGNAL_CFG_TEXT "${TRAIN_CFG_TEXT}")
string(REPLACE "\"intermediate_size\": 48" "\"intermediate_size\": 512" SIGNAL_CFG_TEXT "${SIGNAL_CFG_TEXT}")
string(REPLACE "\"moe_intermediate_size\": 16" "\"moe_intermediate_size\": 128" SIGNAL_CFG_TEXT "${SIGNAL_CFG_TEXT}")
file(WRITE ${SIGNAL_TRAIN_CFG} "${SIGNAL_CFG_TEXT}")
add_test(NAME cli_files_signal_train COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/signal_cleanup_test.sh ${DSV3}
         ${FILES_TMP}/signal_train train ${SIGNAL_TRAIN_CFG} ${TRAIN_CLI}/data)
set_tests_properties(cli_files_signal_convert cli_files_signal_train PROPERTIES TIMEOUT 300 PASS_REGULAR_EXPRESSION "\nok\n")
set_tests_properties(cli_files_signal_train PROPERTIES FIXTURES_REQUIRED train_cli_data)

# A GGUF of the bundled model carries its tokenizer: `run --prompt` on the
# .gguf alone (no tokenizer.json beside it) gives the pinned greedy text of
# default_model_greedy, and `tokenize` with the .gguf gives the same ids as
# tokenizer.json for every line of the tokenizer stress file.
set(BROWN_GGUF ${FILES_TMP}/gguf/brown.gguf)
add_test(NAME cli_files_gguf_convert COMMAND sh -c
  "rm -rf ${FILES_TMP}/gguf && mkdir -p ${FILES_TMP}/gguf && ${DSV3} convert -q --to gguf ${BROWN} ${BROWN_GGUF}")
set_tests_properties(cli_files_gguf_convert PROPERTIES FIXTURES_SETUP files_gguf)
add_test(NAME cli_files_gguf_run_prompt
  COMMAND ${DSV3} run -t 1 -q -m ${BROWN_GGUF} --prompt "The president said that" -n 20 --temperature 0)
set_tests_properties(cli_files_gguf_run_prompt PROPERTIES FIXTURES_REQUIRED files_gguf PASS_REGULAR_EXPRESSION
  "^ the President would be willing to get a good job. \"If you want to do it.\n$")
add_test(NAME cli_files_gguf_tokenize_same_ids COMMAND sh -c
  "${DSV3} tokenize --tokenizer ${BROWN} -f ${PREP_STRESS} 2>/dev/null > ${FILES_TMP}/gguf/dir.ids && ${DSV3} tokenize --tokenizer ${BROWN_GGUF} -f ${PREP_STRESS} 2>/dev/null > ${FILES_TMP}/gguf/gguf.ids && test -s ${FILES_TMP}/gguf/dir.ids && cmp ${FILES_TMP}/gguf/dir.ids ${FILES_TMP}/gguf/gguf.ids && wc -l < ${FILES_TMP}/gguf/gguf.ids")
set_tests_properties(cli_files_gguf_tokenize_same_ids PROPERTIES FIXTURES_REQUIRED files_gguf PASS_REGULAR_EXPRESSION "^[1-9][0-9]*\n$")
files_test(gguf_without_tokenizer "${DSV3} convert -q --to gguf ${G}/v3_tiny_bf16 m.gguf"
           "m.gguf: has no embedded tokenizer.*--tokenizer DIR" ${DSV3} run -m m.gguf --prompt hi)

# ===========================================================================
# Sampling (issue 21): the sampling flags of run and chat, their bad values
# (one "dsv3: error:" naming the flag and the value), the checkpoint's
# generation_config.json as the defaults of run, chat, serve and inspect,
# and chat's slash commands driven through stdin (chat_commands_test.sh).
# Checkpoints with a generation_config.json are the tiny golden one,
# symlinked under GENCFG_TMP with a file from GENCFG_FILES.
# ===========================================================================
set(GENCFG_TMP ${CMAKE_CURRENT_BINARY_DIR}/tmp/gencfg)
set(GENCFG_FILES ${CMAKE_CURRENT_BINARY_DIR}/gencfg_files)
file(WRITE ${GENCFG_FILES}/deepseek.json
     "{\"bos_token_id\": 0, \"eos_token_id\": 1, \"do_sample\": true, \"temperature\": 0.6, \"top_p\": 0.95}\n")
file(WRITE ${GENCFG_FILES}/no_sample.json "{\"do_sample\": false, \"temperature\": 0.6, \"top_p\": 0.95}\n")
file(WRITE ${GENCFG_FILES}/bad_top_p.json "{\"top_p\": 7}\n")
file(WRITE ${GENCFG_FILES}/bad_type.json "{\"temperature\": \"hot\"}\n")
set(TINY_PROMPT --prompt-ids "0 15 27" -n 8)
set(TINY_RUN "${DSV3} -t 1 run -q -m ${G}/v3_tiny_bf16 --prompt-ids '0 15 27' -n 8")  # for sh -c

# Every flag at once, seeded: the same ids twice.
set(ALL_FLAGS --temperature 0.9 --top-k 50 --top-p 0.95 --min-p 0.01 --presence-penalty 0.5 --frequency-penalty 0.3
    --repetition-penalty 1.2 --logit-bias 5=2 --logit-bias 6=-1,7=-100 --seed 7)
string(JOIN " " ALL_FLAGS_TEXT ${ALL_FLAGS})
add_test(NAME cli_run_sampling_flags_seeded COMMAND sh -c
  "a=$(${TINY_RUN} ${ALL_FLAGS_TEXT}) && b=$(${TINY_RUN} ${ALL_FLAGS_TEXT}) && test \"$a\" = \"$b\" && echo \"$a\"")
set_tests_properties(cli_run_sampling_flags_seeded PROPERTIES PASS_REGULAR_EXPRESSION "^[0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+\n$")
add_test(NAME cli_run_sampling_flags_shown COMMAND ${DSV3} -t 1 run -m ${G}/v3_tiny_bf16 ${TINY_PROMPT} ${ALL_FLAGS})
set_tests_properties(cli_run_sampling_flags_shown PROPERTIES PASS_REGULAR_EXPRESSION
  "sampling: temperature 0.9, top_k 50, top_p 0.95, min_p 0.01, seed 7, repetition_penalty 1.2, presence_penalty 0.5, frequency_penalty 0.3, logit_bias 5=2 6=-1 7=-100 \\(built-in defaults; set by --temperature, --top-k, --top-p, --min-p, --presence-penalty, --frequency-penalty, --repetition-penalty, --seed, --logit-bias\\)")
# A token banned with -100 is never produced: the greedy first token, banned, is replaced.
add_test(NAME cli_run_logit_bias_bans COMMAND sh -c
  "t=$(${TINY_RUN} --temperature 0 | cut -d' ' -f1) && out=$(${TINY_RUN} --temperature 0 --logit-bias $t=-100) && echo \"banned $t: $out\" && test -n \"$out\" && ! echo \" $out \" | grep -q \" $t \"")
set_tests_properties(cli_run_logit_bias_bans PROPERTIES PASS_REGULAR_EXPRESSION "^banned [0-9]+: [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+ [0-9]+\n$")
# --repeat-penalty is llama.cpp's name for --repetition-penalty.
add_test(NAME cli_run_repeat_penalty_alias COMMAND sh -c
  "a=$(${TINY_RUN} --temperature 0 --repeat-penalty 1.5) && b=$(${TINY_RUN} --temperature 0 --repetition-penalty 1.5) && test -n \"$a\" && test \"$a\" = \"$b\" && echo same")
set_tests_properties(cli_run_repeat_penalty_alias PROPERTIES PASS_REGULAR_EXPRESSION "^same\n$")

# sampling_error(NAME REGEX FLAGS...): `run` fails with one error line matching REGEX.
function(sampling_error name regex)
  add_test(NAME cli_bad_${name} COMMAND ${FAIL} "${regex}" ${DSV3} -t 1 run -m ${G}/v3_tiny_bf16 --prompt-ids 1 ${ARGN})
endfunction()
sampling_error(temperature_text "error: --temperature: 'warm' is not a finite number" --temperature warm)
sampling_error(top_k_text "error: --top-k: '1.5' is not an integer" --top-k 1.5)
sampling_error(top_p_range "error: --top-p: top_p must be in \\(0, 1\\] \\(got 1.5" --top-p 1.5)
sampling_error(min_p_range "error: --min-p: min_p must be in \\[0, 1\\] \\(got -0.1" --min-p -0.1)
sampling_error(presence_penalty "error: --presence-penalty: presence_penalty must be in \\[-2, 2\\] \\(got 3" --presence-penalty 3)
sampling_error(frequency_penalty "error: --frequency-penalty: frequency_penalty must be in \\[-2, 2\\] \\(got -2.5" --frequency-penalty -2.5)
sampling_error(frequency_penalty_text "error: --frequency-penalty: 'inf' is not a finite number" --frequency-penalty inf)
sampling_error(repetition_penalty "error: --repetition-penalty: repetition_penalty must be in \\(0, 10\\] \\(got 0" --repetition-penalty 0)
sampling_error(repeat_penalty_text "error: --repetition-penalty: 'x' is not a finite number" --repeat-penalty x)
sampling_error(seed "error: --seed: '-1' is not a seed" --seed -1)
sampling_error(logit_bias_format "error: --logit-bias: '15' is not TOKEN=BIAS \\(e.g. 15=-100" --logit-bias 15)
sampling_error(logit_bias_value "error: --logit-bias: '15=big' is not TOKEN=BIAS" --logit-bias 15=big)
sampling_error(logit_bias_range "error: --logit-bias: logit_bias of token 15 must be in \\[-100, 100\\] \\(got 200" --logit-bias 15=200)
sampling_error(logit_bias_vocab "error: --logit-bias: logit_bias: token id 999 is outside the vocabulary \\[0, 384\\)"
               --logit-bias 5=1,999=-100)
# chat takes the same flags, checked before the model loads.
add_test(NAME cli_chat_bad_sampling_flag
         COMMAND ${FAIL} "error: --presence-penalty: presence_penalty must be in \\[-2, 2\\] \\(got 5" ${DSV3} chat -m ${G}/v3_tiny_bf16 --presence-penalty 5)

# gencfg_test(NAME FILE REGEX CMD): CMD (sh) in a fresh directory with m/, the
# tiny golden checkpoint with GENCFG_FILES/FILE.json as its generation_config.json.
function(gencfg_test name file regex cmd)
  add_test(NAME cli_gencfg_${name} COMMAND sh -c
    "d=${GENCFG_TMP}/${name}; rm -rf $d && mkdir -p $d/m && cd $d && ln -s ${G}/v3_tiny_bf16/config.json ${G}/v3_tiny_bf16/model.safetensors m/ && cp ${GENCFG_FILES}/${file}.json m/generation_config.json && { ${cmd}; }")
  set_tests_properties(cli_gencfg_${name} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}" TIMEOUT 60)
endfunction()
set(M_RUN "${DSV3} -t 1 run -m m --prompt-ids '0 15 27' -n 8")
# The file's temperature and top_p are the defaults: the same ids as the flags give, and said so.
gencfg_test(run_defaults deepseek "sampling: temperature 0.6, top_p 0.95, seed 0 \\(defaults from m/generation_config.json\\).*same\n$"
  "a=$(${M_RUN}) && b=$(${TINY_RUN} --temperature 0.6 --top-p 0.95) && test -n \"$a\" && test \"$a\" = \"$b\" && echo same")
# A flag still wins over the file.
gencfg_test(run_flag_wins deepseek "sampling: greedy \\(defaults from m/generation_config.json; set by --temperature\\).*same\n$"
  "a=$(${M_RUN} --temperature 0) && b=$(${TINY_RUN} --temperature 0) && test -n \"$a\" && test \"$a\" = \"$b\" && echo same")
# "do_sample": false is greedy whatever the temperature says.
gencfg_test(run_do_sample_false no_sample "sampling: greedy \\(defaults from m/generation_config.json\\).*same\n$"
  "a=$(${M_RUN}) && b=$(${TINY_RUN} --temperature 0) && test -n \"$a\" && test \"$a\" = \"$b\" && echo same")
gencfg_test(inspect deepseek "generation defaults do_sample true, temperature 0.6, top_p 0.95 \\(from m/generation_config.json\\)\nweights BF16"
  "${DSV3} inspect -m m")
add_test(NAME cli_gencfg_inspect_none COMMAND ${DSV3} inspect -m ${G}/v3_tiny_bf16)
set_tests_properties(cli_gencfg_inspect_none PROPERTIES PASS_REGULAR_EXPRESSION
  "generation defaults none \\(no generation_config.json; built in: greedy for run and chat, temperature 1 for serve\\)")
# An invalid file is an error naming it and the field, for every command that reads it.
foreach(cmd "run -m m --prompt-ids 1" "chat -m m" "serve -m m --port 0" "inspect -m m")
  string(REGEX REPLACE " .*" "" word "${cmd}")
  gencfg_test(bad_top_p_${word} bad_top_p "^ok: dsv3: error: m/generation_config.json: field 'top_p' must be in \\(0, 1\\] \\(got 7\\)\n$"
    "${FAIL} \"generation_config.json: field 'top_p'\" ${DSV3} -t 1 ${cmd} < /dev/null")
endforeach()
gencfg_test(bad_type bad_type "^ok: dsv3: error: m/generation_config.json: field 'temperature' must be a number \\(got string\\)\n$"
  "${FAIL} \"field 'temperature'\" ${M_RUN}")
gencfg_test(fifo deepseek "^ok: dsv3: error: m/generation_config.json: is not a regular file \\(a FIFO\\)\n$"
  "rm m/generation_config.json && mkfifo m/generation_config.json && ${FAIL} FIFO ${M_RUN}")
# serve lays the file over its defaults and says so at start (then SIGINT stops it).
gencfg_test(serve deepseek "sampling defaults from m/generation_config.json: do_sample true, temperature 0.6, top_p 0.95\n.*listening on"
  "${DSV3} -t 1 serve -m m --port 0 --no-web > log 2>&1 & pid=$!; for i in $(seq 100); do grep -q listening log && break; sleep 0.1; done; kill -INT $pid; wait $pid; cat log")

foreach(case banner set conversation bad_load misc)
  add_test(NAME chat_commands_${case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/chat_commands_test.sh ${DSV3} ${BROWN} ${CMAKE_CURRENT_BINARY_DIR}/tmp/chat_commands ${case})
  set_tests_properties(chat_commands_${case} PROPERTIES PASS_REGULAR_EXPRESSION "^ok\n$" TIMEOUT 120)
endforeach()

# run --json-schema (structured outputs, issue 19): with the bundled model,
# sampled, five seeds: each output is a whole JSON document with the schema's
# shape (the grammar closes bounded strings and arrays); bad schemas and
# combinations are one clear error.
set(SCHEMAS ${CMAKE_CURRENT_SOURCE_DIR}/data/schemas)
add_test(NAME cli_run_json_schema COMMAND sh -c
  "for s in 1 2 3 4 5; do ${DSV3} -t 1 run -q --prompt 'The president said that' -n 200 --seed $s --json-schema ${SCHEMAS}/cli_record.json | python3 -c \"import json,sys; d=json.load(sys.stdin); assert d['kind'] in ('news','story','letter') and 1 <= len(d['title']) <= 16 and type(d['year']) is int and type(d['ok']) is bool and len(d.get('people', [])) <= 2, d; print('ok')\" || exit 1; done")
set_tests_properties(cli_run_json_schema PROPERTIES PASS_REGULAR_EXPRESSION "^ok\nok\nok\nok\nok\n$")
add_test(NAME cli_run_json_schema_strict COMMAND ${FAIL} "strict_pattern.json: json schema: #/properties/id/pattern: keyword 'pattern' is not supported in strict mode"
         ${DSV3} run -q --prompt x --json-strict --json-schema ${SCHEMAS}/strict_pattern.json)
add_test(NAME cli_run_json_schema_needs_text COMMAND ${FAIL} "--json-schema needs --prompt"
         ${DSV3} run -q --prompt-ids "1 2" --json-schema ${SCHEMAS}/cli_record.json)
add_test(NAME cli_run_json_schema_missing COMMAND ${FAIL} "--json-schema: ${T}/none.json: cannot open"
         ${DSV3} run -q --prompt x --json-schema ${T}/none.json)

# Long context (issue 17): a one-layer YaRN checkpoint (V3's factor 40 over
# 4096) made by dsv3 init; dsv3 logits (chunked prefill, the last positions
# decoded) against an independent float64 forward, chunked = one piece, and
# the FP8 cache within its bound. CI runs 8K positions; the same script at
# 163840 gives the figures in docs/long-context-inference.md.
add_executable(long_context_reference long_context_reference.cc)
target_link_libraries(long_context_reference PRIVATE dsv3_io nlohmann_json::nlohmann_json)
add_test(NAME long_context_vs_float64
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/long_context_check.sh ${DSV3} $<TARGET_FILE:long_context_reference>
                 $<TARGET_FILE:compare_logits> ${CMAKE_CURRENT_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/long_context 8192)
add_test(NAME cli_logits_longer_than_context
         COMMAND sh -c "python3 ${CMAKE_CURRENT_SOURCE_DIR}/mpi_make_tokens.py 1 300 384 ${T}/t300.safetensors && ${FAIL} '300 positions per sequence, more than .*max_position_embeddings 256' ${DSV3} logits -m ${G}/v3_tiny_bf16 --input ${T}/t300.safetensors --output ${T}/t300.out.safetensors")
# bench --context: decode after N random cache rows (issue 17); the kv bytes
# per token count them (3 layers x (200 + 1 + (4 + 1) / 2) rows x 80 floats x 4 bytes).
add_test(NAME cli_bench_context_tiny
         COMMAND dsv3 -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 -p 4 -n 4 -b 1 --context 200 --reps 1
                 --membw-mb 8 --membw-reps 1 --json)
set_tests_properties(cli_bench_context_tiny PROPERTIES PASS_REGULAR_EXPRESSION
  "\"context\": 200,.*\"kv_bytes_per_token\": 195360")
add_test(NAME cli_bench_context_too_long
         COMMAND ${FAIL} "--context 300 \\+ -n 4 \\+ 1 exceeds max_position_embeddings 256"
                 ${DSV3} -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 -p 4 -n 4 -b 1 --context 300 --reps 1
                 --membw-mb 8 --membw-reps 1)
# run -f: the prompt read from a file gives the same greedy text as --prompt.
add_test(NAME cli_run_prompt_file
         COMMAND sh -c "head -c 600 ${CMAKE_CURRENT_SOURCE_DIR}/data/brown-validation-excerpt.txt > ${T}/prompt.txt && a=$(${DSV3} -t 1 run -m ${BROWN} -f ${T}/prompt.txt -n 8 --temperature 0 -q) && b=$(${DSV3} -t 1 run -m ${BROWN} --prompt \"$(cat ${T}/prompt.txt)\" -n 8 --temperature 0 -q) && [ -n \"$a\" ] && [ \"$a\" = \"$b\" ]")
add_test(NAME cli_run_prompt_file_missing
         COMMAND ${FAIL} "--prompt-file: cannot read .*no-such-prompt.txt" ${DSV3} run -m ${BROWN} -f ${T}/no-such-prompt.txt)
# Issue 18: the two MLA forms compared in one run, and --attention-form's values.
add_test(NAME cli_bench_compare_attention_tiny
         COMMAND dsv3 -t 1 bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 -p 8 -n 2 -b 1 --reps 1 --membw-mb 8
                 --membw-reps 1 --compare-attention)
set_tests_properties(cli_bench_compare_attention_tiny PROPERTIES PASS_REGULAR_EXPRESSION
                     "by MLA form \\(alternating runs\\): absorbed [0-9.]+ tok/s, decompressed [0-9.]+ tok/s.*CPU seconds")
add_test(NAME cli_attention_form_decompressed
         COMMAND dsv3 -t 1 --attention-form decompressed bench --model ${DSV3_GOLDEN_DIR}/v2lite_tiny_bf16 -p 8 -n 2
                 -b 1 --reps 1 --membw-mb 8 --membw-reps 1)
set_tests_properties(cli_attention_form_decompressed PROPERTIES PASS_REGULAR_EXPRESSION "prefill 8 tokens: .* tok/s")
add_test(NAME cli_attention_form_bad COMMAND dsv3 --attention-form naive bench --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16)
set_tests_properties(cli_attention_form_bad PROPERTIES PASS_REGULAR_EXPRESSION "--attention-form: naive not in")
