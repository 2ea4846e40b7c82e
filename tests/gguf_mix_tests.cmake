# dsv3's llama-quantize presets against llama-quantize itself. Each case
# converts a checkpoint with `dsv3 convert --to gguf --type T` and checks every
# tensor's name, ggml type, shape and data bytes (sha256) against the table
# scripts/gguf_tensors.py printed from llama-quantize's own file of the same
# weights (tests/data/llama_quantize/README.md: how, and which llama.cpp
# commit). The tiny golden checkpoints have rows of 64..384 elements, so the
# row-length fallbacks are exercised as much as the mix rules; brown-10m and
# v3_tiny_fp8 have 8 experts, which switches llama.cpp's 8-expert rules on.
set(LQ ${CMAKE_CURRENT_SOURCE_DIR}/data/llama_quantize)
set(TENSORS ${CMAKE_SOURCE_DIR}/scripts/gguf_tensors.py)
file(GLOB DSV3_LQ_TABLES RELATIVE ${LQ} ${LQ}/*.tsv)
foreach(table ${DSV3_LQ_TABLES})
  # <model>.<type>.tsv, <type> with a "pure-" prefix for --pure
  string(REGEX REPLACE "^([^.]+)\\.([^.]+)\\.tsv$" "\\1" model ${table})
  string(REGEX REPLACE "^([^.]+)\\.([^.]+)\\.tsv$" "\\2" type ${table})
  if(model STREQUAL "brown-10m")
    set(dir ${CMAKE_SOURCE_DIR}/models/brown-10m)
  else()
    set(dir ${G}/${model})
  endif()
  string(REGEX REPLACE "^pure-" "--pure --type " args "${type}")
  if(args STREQUAL type)
    set(args "--type ${type}")
  endif()
  set(out ${T}/lq_${model}_${type}.gguf)
  add_test(NAME gguf_mix_llama_quantize_${model}_${type}
    COMMAND sh -c "${DSV3} convert -q --force --to gguf ${args} ${dir} ${out} && python3 ${TENSORS} --check ${LQ}/${table} ${out} && rm -f ${out}")
endforeach()
