# Writes a C++ source holding a file's bytes (cmake -DINPUT=f -DOUTPUT=o.cc
# -DSYMBOL=kName -P embed.cmake), so static assets ship inside the binary.
file(READ "${INPUT}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}" "// Generated from ${name} by cmake/embed.cmake; do not edit.\n#include <cstddef>\nnamespace dsv3::server {\nextern const unsigned char ${SYMBOL}[];\nextern const size_t ${SYMBOL}_size;\nconst unsigned char ${SYMBOL}[] = {${bytes} 0x00};\nconst size_t ${SYMBOL}_size = sizeof(${SYMBOL}) - 1;\n}  // namespace dsv3::server\n")
