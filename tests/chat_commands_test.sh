#!/usr/bin/env bash
# `dsv3 chat` driven through stdin: the sampling settings shown at start and
# where they came from, /set, /system, /clear, /save and /load (a round trip,
# and every bad file named without ending the chat), /help, unknown commands,
# '//' and /exit. The model is the bundled one's weights and tokenizer,
# symlinked, so its own generation_config.json (whatever it becomes) plays
# no part: each case writes its own, or none.
#   chat_commands_test.sh DSV3 MODEL_DIR WORK_DIR CASE
# CASE: banner | set | conversation | bad_load | misc
set -u
dsv3=$1 model=$2 case=$4
work=$3/$case
rm -rf "$work" && mkdir -p "$work/m" && cd "$work" || exit 1
for f in config.json model.safetensors tokenizer.json tokenizer_config.json; do ln -s "$model/$f" "m/$f"; done

fail() { echo "FAIL ($case): $*"; echo "--- output:"; cat out; exit 1; }
# chat FLAGS... < input: stdout and stderr together in ./out; must exit 0.
chat() { "$dsv3" -t 1 chat -m m -n 6 "$@" > out 2>&1 || fail "exit status $?"; }
has() { grep -qE -- "$1" out || fail "no line matches /$1/"; }
hasnt() { ! grep -qE -- "$1" out || fail "a line matches /$1/"; }
roles() { grep -o '"role": "[a-z]*"' "$1" | cut -d'"' -f4 | tr '\n' ' '; }

case $case in
banner)
  printf '' | chat
  has '^sampling: greedy \(built-in defaults\)$'
  echo '{"do_sample": true, "temperature": 0.6, "top_p": 0.95, "bos_token_id": 0, "eos_token_id": 1}' \
    > m/generation_config.json
  printf '' | chat
  has '^sampling: temperature 0\.6, top_p 0\.95, seed 0 \(defaults from m/generation_config\.json\)$'
  printf '' | chat --temperature 0 --seed 3 --repeat-penalty 1.1
  has '^sampling: greedy, repetition_penalty 1\.1 \(defaults from m/generation_config\.json; set by --temperature, --repetition-penalty, --seed\)$'
  printf '' | chat -q
  hasnt 'sampling:'
  echo '{"do_sample": false, "temperature": 0.6}' > m/generation_config.json
  printf '' | chat
  has '^sampling: greedy \(defaults from m/generation_config\.json\)$'
  # An invalid file ends the chat before it starts, naming the file and field.
  echo '{"top_p": "high"}' > m/generation_config.json
  "$dsv3" chat -m m < /dev/null > out 2>&1
  rc=$?
  [ "$rc" = 1 ] || fail "exit status $rc for an invalid generation_config.json"
  has "^dsv3: error: m/generation_config\.json: field 'top_p' must be a number \(got string\)$"
  ;;
set)
  printf '/set temperature 0.5\n/set top-p 0.8\n/set top_k 40\n/set min_p 0.05\n/set presence_penalty 0.5\n/set frequency_penalty 0.25\n/set repetition_penalty 1.1\n/set seed 9\n/set max_tokens 4\n/set\nhello\n' | chat -q
  has '^> sampling: temperature 0\.5, seed 0; max_tokens 6$'
  has '^> sampling: temperature 0\.5, top_p 0\.8, seed 0; max_tokens 6$'
  has '^> sampling: temperature 0\.5, top_k 40, top_p 0\.8, min_p 0\.05, seed 9, repetition_penalty 1\.1, presence_penalty 0\.5, frequency_penalty 0\.25; max_tokens 4$'
  # Bad values: one error each, nothing changed, the chat goes on.
  printf '/set top_p 2\n/set temperature hot\n/set seed -1\n/set max_tokens 0\n/set warmth 1\n/set temperature\n/set\n' | chat -q
  has "^> dsv3: error: /set top_p: top_p must be in \(0, 1\] \(got 2"
  has "^> dsv3: error: /set temperature: 'hot' is not a finite number$"
  has "^> dsv3: error: /set seed: '-1' is not a seed"
  has "^> dsv3: error: /set max_tokens: '0' is not a token count"
  has "^> dsv3: error: /set: unknown parameter 'warmth' \(temperature, top_k, top_p, min_p, presence_penalty, frequency_penalty, repetition_penalty, seed, max_tokens\)$"
  has "^> dsv3: error: /set temperature: give a value"
  has '^> sampling: greedy; max_tokens 6$'
  # /set reaches the next reply: the same reply as the flags give, not the greedy one.
  flags=$(printf 'hello\n' | "$dsv3" -t 1 chat -q -m m -n 12 --temperature 0.9 --seed 5 2>/dev/null)
  set=$(printf '/set temperature 0.9\n/set seed 5\nhello\n' | "$dsv3" -t 1 chat -q -m m -n 12 2>/dev/null | tail -n 2)
  greedy=$(printf 'hello\n' | "$dsv3" -t 1 chat -q -m m -n 12 2>/dev/null)
  [ -n "$flags" ] && [ "$flags" = "$set" ] || fail "/set gave '$set', the flags '$flags'"
  [ "$flags" != "$greedy" ] || fail "temperature 0.9 gave the greedy reply '$greedy'"
  ;;
conversation)
  printf '/set temperature 0.7\n/help\n/system Be brief.\nhello\n/save a.json\n/clear\n/save cleared.json\n/load a.json\n/save b.json\n/system\n/save nosys.json\nmore\n/save c.json\n' | chat -q
  has '^> system prompt set$'
  has '^> saved 3 messages to a\.json$'
  has '^> conversation cleared \(the system prompt stays\)$'
  has '^> saved 1 message to cleared\.json$'
  has '^> loaded 3 messages from a\.json$'
  has '^> system prompt removed$'
  cmp -s a.json b.json || fail "/load then /save changed the conversation"
  [ "$(roles a.json)" = "system user assistant " ] || fail "a.json roles: $(roles a.json)"
  grep -q '"content": "Be brief\."' a.json && grep -q '"content": "hello"' a.json || fail "a.json: $(cat a.json)"
  [ "$(roles cleared.json)" = "system " ] || fail "cleared.json roles: $(roles cleared.json)"
  [ "$(roles nosys.json)" = "user assistant " ] || fail "nosys.json roles: $(roles nosys.json)"
  # The loaded history goes on: the next turn adds to it.
  [ "$(roles c.json)" = "user assistant user assistant " ] || fail "c.json roles: $(roles c.json)"
  # Other tools read the file: tokenize renders it with the chat format.
  "$dsv3" tokenize --tokenizer m --chat a.json --text > out 2>&1 || fail "tokenize --chat a.json"
  has 'Be brief\.<｜User｜>hello<｜Assistant｜>'
  ;;
bad_load)
  printf '{"messages": [{"role": "robot", "content": "x"}]}' > robot.json
  printf '[{"role": "user"}]' > nocontent.json
  printf '[{"role": "user", "content": "hi"' > truncated.json
  printf '{"x": 1}' > object.json
  awk 'BEGIN { for (i = 0; i < 200; i++) printf "["; for (i = 0; i < 200; i++) printf "]" }' > deep.json
  mkdir dir.json && mkfifo fifo.json
  printf '/system Keep me.\nhello\n/load robot.json\n/load nocontent.json\n/load truncated.json\n/load object.json\n/load deep.json\n/load dir.json\n/load fifo.json\n/load missing.json\n/load\n/save\n/save nodir/x.json\n/save ok.json\n' | chat -q
  has "^> dsv3: error: /load: robot\.json: messages\[0\]\.role 'robot' is not system, user, assistant or tool$"
  has "^> dsv3: error: /load: nocontent\.json\[0\]\.content is required"
  has "^> dsv3: error: /load: truncated\.json: not valid JSON$"
  has "^> dsv3: error: /load: object\.json: expected an array of messages"
  has "^> dsv3: error: /load: deep\.json: JSON nested deeper than 128 levels"
  has "^> dsv3: error: /load: dir\.json: is not a regular file \(a directory\)$"
  has "^> dsv3: error: /load: fifo\.json: is not a regular file \(a FIFO\)$"
  has "^> dsv3: error: /load: missing\.json: cannot open: No such file or directory$"
  has "^> dsv3: error: /load: give a file name: /load FILE$"
  has "^> dsv3: error: /save: give a file name: /save FILE$"
  has "^> dsv3: error: /save: nodir/x\.json\.tmp: cannot create: No such file or directory$"
  has '^> saved 3 messages to ok\.json$'  # every failed /load left the conversation as it was
  [ "$(roles ok.json)" = "system user assistant " ] || fail "ok.json roles: $(roles ok.json)"
  ;;
misc)
  printf '/help\n/frobnicate\n//not a command\n/save s.json\n/exit\nnever sent\n/save t.json\n' | chat -q
  has '^> /clear +forget the conversation'
  has '^/set \[PARAM VALUE\] +change a setting'
  has "^> dsv3: error: unknown command '/frobnicate' \(/clear, /system, /save, /load, /set, /help, /exit\)$"
  grep -q '"content": "/not a command"' s.json || fail "'//' did not send '/not a command': $(cat s.json)"
  [ ! -e t.json ] || fail "/exit did not stop the chat"
  printf '/save r.json\n/set temperature 0.5\nhello\n' | chat -q --raw-prompt
  has "^> dsv3: error: /save: --raw-prompt keeps no conversation$"
  has '^> sampling: temperature 0\.5, seed 0; max_tokens 6$'
  ;;
*)
  echo "unknown case '$case'"
  exit 1
  ;;
esac
echo ok
