# CLI tests of tokenize / train-tokenizer / run --prompt / chat that need no
# node: a tokenizer is trained from the stress file first (a fixture).
set(TOK_EXPECT ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/expect.sh)
set(TOK_WORK ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_cli)
set(TOK_DSV3 $<TARGET_FILE:dsv3>)
set(TOK_STRESS ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/stress.txt)

function(tok_cli name rc regex cmd)
  add_test(NAME tokenizer_cli_${name} COMMAND ${TOK_EXPECT} ${rc} "${regex}" "${cmd}")
  set_tests_properties(tokenizer_cli_${name} PROPERTIES FIXTURES_REQUIRED tok_cli TIMEOUT 120)
endfunction()

add_test(NAME tokenizer_cli_setup COMMAND ${TOK_EXPECT} 0 "merges"
         "rm -rf ${TOK_WORK} && mkdir -p ${TOK_WORK}/bad && printf '{not json' > ${TOK_WORK}/bad/tokenizer.json && ${TOK_DSV3} train-tokenizer --vocab-size 600 --out ${TOK_WORK}/tok ${TOK_STRESS}")
set_tests_properties(tokenizer_cli_setup PROPERTIES FIXTURES_SETUP tok_cli)

set(T "${TOK_DSV3} tokenize --tokenizer ${TOK_WORK}/tok")
tok_cli(roundtrip 0 "^ok"
        "${T} --file ${TOK_STRESS} 2>/dev/null > ${TOK_WORK}/ids && ${T} --decode --file ${TOK_WORK}/ids > ${TOK_WORK}/back && head -n 68 ${TOK_STRESS} | cmp - <(head -n 68 ${TOK_WORK}/back) && echo ok")
tok_cli(stdin_lines 0 "^[0-9 ]+\n\n[0-9 ]+$" "printf 'hello world\\n\\nsecond line\\n' | ${T}")
tok_cli(empty_input 0 "^ok$" "test -z \"$(printf '' | ${T})\" && echo ok")
tok_cli(invalid_utf8 0 "stdin line 1 is not valid UTF-8.*U\\+FFFD" "printf 'bad \\xff byte\\n' | ${T}")
tok_cli(decode_out_of_vocab 1 "dsv3: error: stdin line 2: token id 999999 is not in the vocabulary" "printf '5 6\\n999999\\n' | ${T} --decode")
tok_cli(decode_not_an_id 1 "dsv3: error: stdin line 1: 'x1' is not a token id" "echo 'x1' | ${T} --decode")
tok_cli(missing_dir 1 "dsv3: error: /nonexistent/tok: not a directory" "${TOK_DSV3} tokenize --tokenizer /nonexistent/tok < /dev/null")
tok_cli(missing_file 1 "dsv3: error: ${TOK_WORK}/tokenizer.json: not found" "${TOK_DSV3} tokenize --tokenizer ${TOK_WORK} < /dev/null")
tok_cli(malformed_json 1 "dsv3: error: .*bad/tokenizer.json: not valid JSON" "${TOK_DSV3} tokenize --tokenizer ${TOK_WORK}/bad < /dev/null")
tok_cli(missing_input 1 "dsv3: error: --file: .*/nope.txt" "${T} --file ${TOK_WORK}/nope.txt")
tok_cli(chat_text 0 "^<｜begin▁of▁sentence｜>S<｜User｜>Hi<｜Assistant｜>$"
        "printf '[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Hi\"}]' > ${TOK_WORK}/c.json && ${T} --chat ${TOK_WORK}/c.json --add-generation-prompt --text")
tok_cli(chat_ids_start_with_bos 0 "^0 "
        "printf '[{\"role\":\"user\",\"content\":\"Hi\"}]' > ${TOK_WORK}/c_ids.json && ${T} --chat ${TOK_WORK}/c_ids.json")
tok_cli(chat_bad_messages 1 "dsv3: error: .*bad.json: messages\\[0\\].role 'robot'"
        "printf '{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}' > ${TOK_WORK}/bad.json && ${T} --chat ${TOK_WORK}/bad.json")
tok_cli(train_vocab_too_small 1 "dsv3: error: --vocab-size must be at least 276" "${TOK_DSV3} train-tokenizer -q --vocab-size 100 --out ${TOK_WORK}/small ${TOK_STRESS}")
tok_cli(train_missing_file 1 "dsv3: error: .*missing.txt" "${TOK_DSV3} train-tokenizer -q --out ${TOK_WORK}/x ${TOK_WORK}/missing.txt")
tok_cli(train_empty_file 1 "dsv3: error: the input files hold no text" ": > ${TOK_WORK}/empty.txt && ${TOK_DSV3} train-tokenizer -q --out ${TOK_WORK}/x ${TOK_WORK}/empty.txt")
tok_cli(run_without_tokenizer 1 "dsv3: error: .*tokenizer.json: not found"
        "${TOK_DSV3} run -q --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16 --prompt hello")
tok_cli(run_needs_a_prompt 1 "give --prompt" "${TOK_DSV3} run -q --model ${DSV3_GOLDEN_DIR}/v3_tiny_bf16")

# Text in, text out with the tiny golden model and a tokenizer trained to its
# vocabulary (384 ids): greedy runs repeat exactly; chat reads stdin to EOF.
set(TOK_MODEL ${TOK_WORK}/model)
tok_cli(run_prompt_text 0 "^ok$"
        "mkdir -p ${TOK_MODEL} && cp ${DSV3_GOLDEN_DIR}/v3_tiny_bf16/config.json ${DSV3_GOLDEN_DIR}/v3_tiny_bf16/model.safetensors ${TOK_MODEL}/ && ${TOK_DSV3} train-tokenizer -q --vocab-size 384 --out ${TOK_MODEL} ${TOK_STRESS} > /dev/null && a=$(${TOK_DSV3} run -q -m ${TOK_MODEL} --prompt 'Hello world' -n 20) && b=$(${TOK_DSV3} run -q -m ${TOK_MODEL} --prompt 'Hello world' -n 20) && test -n \"$a\" && test \"$a\" = \"$b\" && echo ok")
set_tests_properties(tokenizer_cli_run_prompt_text PROPERTIES FIXTURES_SETUP tok_model)
tok_cli(chat_two_turns 0 "^> .*\n> .*\n> $" "printf 'hi\\nmore\\n' | ${TOK_DSV3} chat -q -m ${TOK_MODEL} -n 8 --system 'Be brief.' | tr -d '\\r'")
set_tests_properties(tokenizer_cli_chat_two_turns PROPERTIES FIXTURES_REQUIRED "tok_cli;tok_model")
# chat --spec mtp (the golden model has an MTP layer): the same greedy replies.
tok_cli(chat_spec_same_replies 0 "^ok$" "a=$(printf 'hi\\nmore\\n' | ${TOK_DSV3} chat -q -m ${TOK_MODEL} -n 12) && b=$(printf 'hi\\nmore\\n' | ${TOK_DSV3} chat -q -m ${TOK_MODEL} -n 12 --spec mtp --draft-tokens 2) && test -n \"$a\" && test \"$a\" = \"$b\" && echo ok")
set_tests_properties(tokenizer_cli_chat_spec_same_replies PROPERTIES FIXTURES_REQUIRED "tok_cli;tok_model")
tok_cli(chat_raw_prompt 0 "^> " "printf 'hi\\n' | ${TOK_DSV3} chat -q --raw-prompt -m ${TOK_MODEL} -n 4")
set_tests_properties(tokenizer_cli_chat_raw_prompt PROPERTIES FIXTURES_REQUIRED "tok_cli;tok_model")
tok_cli(chat_unknown_template 1 "dsv3: error: chat_template .* --raw-prompt"
        "mkdir -p ${TOK_WORK}/model2 && cp ${TOK_MODEL}/* ${TOK_WORK}/model2/ && sed -E -i 's/(\"chat_template\": )\".*\"(,?)$/\\1\"{{ messages }}\"\\2/' ${TOK_WORK}/model2/tokenizer_config.json && ${TOK_DSV3} chat -q -m ${TOK_WORK}/model2 < /dev/null")
set_tests_properties(tokenizer_cli_chat_unknown_template PROPERTIES FIXTURES_REQUIRED "tok_cli;tok_model")
