// A byte-level recogniser of the JSON documents a compiled schema admits
// (json_schema.h), fed one byte at a time as tokens are decoded. Its state is
// a set of stacks of frames (one frame per open value: object, array, string,
// number, literal, key); alternatives (anyOf, enum literals sharing a prefix,
// which optional property comes next) are separate stacks, dropped as soon
// as a byte contradicts them. The documents are compact JSON with one
// optional space after ':' and ','; property keys come in schema order. A
// state with an empty stack has read a whole document; nesting deeper than
// kMaxGrammarDepth frames is refused (so recursive schemas stay finite).
//
// Everything is flat and reusable: Advance writes into a caller-owned state
// whose buffers keep their capacity, so walking a vocabulary trie does not
// allocate once warm.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/json_schema.h"

namespace dsv3 {

inline constexpr int kMaxGrammarDepth = 48;

struct JsonFrame {
  uint8_t type = 0, phase = 0;
  uint16_t extra = 0;  // UTF-8 continuation bytes or \u hex digits still expected (strings)
  int32_t node = -1;
  int32_t a = 0, b = 0;  // per type: property index, literal index, position, count
  bool operator==(const JsonFrame& o) const {
    return type == o.type && phase == o.phase && extra == o.extra && node == o.node && a == o.a && b == o.b;
  }
  bool operator<(const JsonFrame& o) const;
};

// A set of stacks, stored flat: stack i is frames[starts[i], starts[i+1]).
struct JsonState {
  std::vector<JsonFrame> frames;
  std::vector<uint32_t> starts = {0};
  int64_t stacks() const { return static_cast<int64_t>(starts.size()) - 1; }
  bool dead() const { return stacks() == 0; }
  void Clear() { frames.clear(), starts.assign(1, 0); }
  // The bytes of the state, a key for mask caches.
  std::string Key() const;
};

class JsonGrammar {
 public:
  explicit JsonGrammar(CompiledSchema schema);

  JsonState Start() const;
  // out = the states `in` reaches by reading byte b (out.dead() if none).
  void Advance(const JsonState& in, uint8_t b, JsonState* out) const;
  // A whole document has been read (end of generation allowed here).
  bool Accepting(const JsonState& s) const;
  // When every stack is inside a string's characters (not in an escape or a
  // multi-byte character): how many more characters the roomiest may take
  // (INT64_MAX: unbounded). -1 otherwise. Token masks there need only each
  // token's character count, except for tokens that close the string.
  int64_t StringRoom(const JsonState& s) const;
  // The state of a bare unbounded string just opened, and the characters a
  // state of it has read (for classifying tokens against StringRoom).
  static JsonGrammar StringProbe();
  int64_t StringChars(const JsonState& s) const;
  const CompiledSchema& schema() const { return schema_; }

 private:
  struct Builder;
  void Step(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const;
  void Expand(Builder& out, std::vector<JsonFrame>& stack, int32_t node, uint8_t b, int guard) const;
  void ChildDone(Builder& out, std::vector<JsonFrame>& stack, uint8_t* refeed) const;
  void StepObject(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const;
  void StepArray(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const;
  void StepString(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const;
  void StepNumber(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const;
  void StepLiteral(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const;
  void Push(Builder& out, std::vector<JsonFrame>& stack, const JsonFrame& f, uint8_t b) const;
  void Emit(Builder& out, const std::vector<JsonFrame>& stack) const;

  CompiledSchema schema_;
  // Frames a value of each node needs at the least to be completed (its
  // required parts, nested): a frame is pushed only where that many fit, so
  // no document can run into the depth limit with no way to finish.
  std::vector<int32_t> min_frames_;
};

}  // namespace dsv3
