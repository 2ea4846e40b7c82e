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
  // Bytes a string state still owes before its characters may go on (the
  // rest of an escape, a \u sequence or a multi-byte character); 0 elsewhere.
  int64_t StringPending(const JsonState& s) const;

  // The fewest bytes that complete a document from `s` (0: complete; at
  // least kUnfinishable when no document can be completed). Decoding under a
  // token budget keeps this within the tokens left: every byte is a token of
  // a byte-level vocabulary, so a document can always be closed in time.
  int64_t MinToFinish(const JsonState& s) const;
  // For a state StringRoom accepts, per stack: the bytes that finish what
  // lies below the string, the characters it still needs (minLength) and the
  // characters it may still take (maxLength; INT64_MAX: unbounded).
  struct StringTail {
    int64_t below = 0, need = 0, room = 0;
  };
  void StringTails(const JsonState& s, std::vector<StringTail>* tails) const;
  // An upper bound on how much one byte can raise MinToFinish (a byte may
  // commit to the costliest alternative, optional property or array item).
  int64_t max_byte_growth() const { return max_byte_growth_; }
  static constexpr int64_t kUnfinishable = int64_t{1} << 40;

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
  void ComputeMinBytes();
  int64_t FrameRest(const JsonFrame& f, bool top) const;
  int64_t ObjectRest(const JsonFrame& f, bool top) const;
  int64_t ArrayRest(const JsonFrame& f, bool top) const;
  // open_child: the last frame has a child above `end` (its rest excludes it).
  int64_t StackRest(const JsonFrame* begin, const JsonFrame* end, bool open_child) const;

  CompiledSchema schema_;
  // Frames a value of each node needs at the least to be completed (its
  // required parts, nested): a frame is pushed only where that many fit, so
  // no document can run into the depth limit with no way to finish.
  std::vector<int32_t> min_frames_;
  // The fewest bytes of a whole value of each node, and per object node, from
  // property i on: required_rest_[n][i] the bytes of the required properties
  // (each with its comma), after_comma_[n][i] the cheapest way to go on after
  // a comma (the next property written, then the required ones after it);
  // per sequence node, parts_rest_[n][i] the bytes of parts i, i+1, ...
  std::vector<int64_t> min_bytes_;
  std::vector<std::vector<int64_t>> required_rest_, after_comma_, parts_rest_;
  int64_t max_byte_growth_ = 0;
};

}  // namespace dsv3
