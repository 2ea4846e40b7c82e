// One pass over the text counting open brackets outside strings; see json_depth.h.
#include "core/json_depth.h"

namespace dsv3 {

Status CheckJsonDepth(std::string_view text, const std::string& label, int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return Status::Error(label + ": JSON nested deeper than " + std::to_string(max_depth) +
                             " levels (at byte " + std::to_string(i) + ")");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return Status::Ok();
}

}  // namespace dsv3
