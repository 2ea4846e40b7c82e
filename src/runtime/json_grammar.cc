// The byte-level JSON recogniser; see json_grammar.h. Each Step* function
// reads one byte on the top frame of one stack and emits the stacks that
// result (none when the byte is not allowed there).
#include "runtime/json_grammar.h"

#include <algorithm>
#include <cstring>

namespace dsv3 {

namespace {

enum FrameType : uint8_t { kValue, kObject, kArray, kString, kNumber, kKey, kLiteral, kSeq };

// Object phases.
enum : uint8_t { kObjOpen, kObjKey, kObjColon, kObjValue, kObjValueSpaced, kObjNext, kObjComma, kObjCommaSpaced };
// Array phases.
enum : uint8_t { kArrOpen, kArrFirst, kArrNext, kArrComma, kArrCommaSpaced };
// String phases.
enum : uint8_t { kStrOpen, kStrBody, kStrEscape, kStrHex };
// Number phases (JSON's number grammar); kCanEnd marks the ones a number may stop in.
enum : uint8_t { kNumStart, kNumMinus, kNumZero, kNumInt, kNumDot, kNumFrac, kNumE, kNumESign, kNumExp };
bool CanEnd(uint8_t phase) { return phase == kNumZero || phase == kNumInt || phase == kNumFrac || phase == kNumExp; }
bool Digit(uint8_t b) { return b >= '0' && b <= '9'; }
bool Hex(uint8_t b) { return Digit(b) || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F'); }

}  // namespace

bool JsonFrame::operator<(const JsonFrame& o) const {
  return std::memcmp(this, &o, sizeof(JsonFrame)) < 0;
}

std::string JsonState::Key() const {
  std::string k(reinterpret_cast<const char*>(frames.data()), frames.size() * sizeof(JsonFrame));
  k.append(reinterpret_cast<const char*>(starts.data()), starts.size() * sizeof(uint32_t));
  return k;
}

// Collects emitted stacks into the output state.
struct JsonGrammar::Builder {
  JsonState* out;
  void Add(const std::vector<JsonFrame>& stack) {
    out->frames.insert(out->frames.end(), stack.begin(), stack.end());
    out->starts.push_back(static_cast<uint32_t>(out->frames.size()));
  }
};

JsonGrammar::JsonGrammar(CompiledSchema schema) : schema_(std::move(schema)) {
  const auto& nodes = schema_.nodes;
  const int32_t kInf = 1 << 20;
  min_frames_.assign(nodes.size(), kInf);
  for (bool changed = true; changed;) {  // a fixpoint: recursion converges on its shallowest end
    changed = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      const SchemaNode& n = nodes[i];
      int32_t need = 1;  // scalars: one frame
      switch (n.kind) {
        case SchemaKind::kObject:
          need = 2;  // the object and a key
          for (const auto& p : n.properties)
            if (p.required) need = std::max(need, 1 + min_frames_[p.node]);
          break;
        case SchemaKind::kArray: need = n.min_items > 0 ? 1 + min_frames_[n.items] : 1; break;
        case SchemaKind::kAnyOf:
          need = kInf;
          for (int32_t a : n.alternatives) need = std::min(need, min_frames_[a]);
          break;
        case SchemaKind::kSequence:
          for (int32_t a : n.alternatives) need = std::max(need, 1 + min_frames_[a]);
          break;
        default: break;
      }
      need = std::min(need, kInf);
      if (need < min_frames_[i]) min_frames_[i] = need, changed = true;
    }
  }
  ComputeMinBytes();
}

JsonState JsonGrammar::Start() const {
  JsonState s;
  JsonFrame f;
  f.type = kValue, f.node = schema_.root;
  s.frames.push_back(f);
  s.starts.push_back(1);
  return s;
}

void JsonGrammar::Emit(Builder& out, const std::vector<JsonFrame>& stack) const { out.Add(stack); }

void JsonGrammar::Push(Builder& out, std::vector<JsonFrame>& stack, const JsonFrame& f, uint8_t b) const {
  // Only where the value can be completed within the limit (min_frames_).
  const int32_t need = f.type == kKey || f.node < 0 ? 1 : min_frames_[f.node];
  if (static_cast<int64_t>(stack.size()) + need > kMaxGrammarDepth) return;
  stack.push_back(f);
  Step(out, stack, b);
}

void JsonGrammar::Expand(Builder& out, std::vector<JsonFrame>& stack, int32_t node, uint8_t b, int guard) const {
  const SchemaNode& n = schema_.nodes[node];
  JsonFrame f;
  f.node = node;
  switch (n.kind) {
    case SchemaKind::kAnyOf:
      if (guard > 16) return;  // anyOf of anyOf ... without consuming: give up on this branch
      for (int32_t alt : n.alternatives) {
        std::vector<JsonFrame> copy = stack;
        Expand(out, copy, alt, b, guard + 1);
      }
      return;
    case SchemaKind::kSequence: f.type = kSeq; break;
    case SchemaKind::kObject: f.type = kObject; break;
    case SchemaKind::kArray: f.type = kArray; break;
    case SchemaKind::kString: f.type = kString; break;
    case SchemaKind::kNumber:
    case SchemaKind::kInteger: f.type = kNumber; break;
    case SchemaKind::kLiterals:
      f.type = kLiteral;
      for (size_t i = 0; i < n.literals.size(); ++i) {
        if (static_cast<uint8_t>(n.literals[i][0]) != b) continue;
        std::vector<JsonFrame> copy = stack;
        f.a = static_cast<int32_t>(i);
        Push(out, copy, f, b);
      }
      return;
  }
  Push(out, stack, f, b);
}

void JsonGrammar::Step(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const {
  if (stack.empty()) return;  // a whole document was read: nothing may follow
  switch (stack.back().type) {
    case kValue: {
      const int32_t node = stack.back().node;
      stack.pop_back();
      Expand(out, stack, node, b, 0);
      return;
    }
    case kObject: return StepObject(out, stack, b);
    case kArray: return StepArray(out, stack, b);
    case kString: return StepString(out, stack, b);
    case kNumber: return StepNumber(out, stack, b);
    case kSeq: {  // the next part of the row begins with this byte
      JsonFrame v;
      v.type = kValue, v.node = schema_.nodes[stack.back().node].alternatives[stack.back().a];
      return Push(out, stack, v, b);
    }
    default: return StepLiteral(out, stack, b);
  }
}

void JsonGrammar::ChildDone(Builder& out, std::vector<JsonFrame>& stack, uint8_t* refeed) const {
  if (!stack.empty()) {
    JsonFrame& p = stack.back();
    if (p.type == kSeq) {
      if (++p.a < static_cast<int32_t>(schema_.nodes[p.node].alternatives.size())) {
        if (refeed) return Step(out, stack, *refeed);
        return Emit(out, stack);
      }
      stack.pop_back();  // the row is complete: so is the value it stood for
      return ChildDone(out, stack, refeed);
    }
    if (p.type == kObject) {
      p.phase = (p.phase == kObjValue || p.phase == kObjValueSpaced) ? kObjNext : kObjColon;
    } else if (p.type == kArray) {
      p.phase = kArrNext;
      p.a += 1;
    }
  }
  if (refeed) return Step(out, stack, *refeed);
  Emit(out, stack);
}

void JsonGrammar::StepObject(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const {
  JsonFrame& f = stack.back();
  const SchemaNode& n = schema_.nodes[f.node];
  const int32_t props = static_cast<int32_t>(n.properties.size());
  auto close = [&] {
    stack.pop_back();
    ChildDone(out, stack, nullptr);
  };
  switch (f.phase) {
    case kObjOpen:
      if (b == '{') f.phase = kObjKey, Emit(out, stack);
      return;
    case kObjColon:
      if (b == ':') f.phase = kObjValue, Emit(out, stack);
      return;
    case kObjValue:
      if (b == ' ') return f.phase = kObjValueSpaced, Emit(out, stack);
      [[fallthrough]];
    case kObjValueSpaced: {
      JsonFrame v;
      v.type = kValue;
      v.node = n.free_form ? n.additional : n.properties[f.a - 1].node;
      return Push(out, stack, v, b);
    }
    case kObjNext:
      if (b == '}' && (n.free_form || f.a > n.last_required)) return close();
      if (b == ',' && (n.free_form || f.a < props)) f.phase = kObjComma, Emit(out, stack);
      return;
    case kObjComma:
      if (b == ' ') return f.phase = kObjCommaSpaced, Emit(out, stack);
      [[fallthrough]];
    default:  // kObjKey, kObjCommaSpaced: a key (or '}' right after '{')
      if (b == '}' && f.phase == kObjKey && (n.free_form || n.last_required < 0)) return close();
      if (b != '"') return;
      if (n.free_form) {
        JsonFrame k;
        k.type = kString, k.node = schema_.nodes[schema_.any_value].alternatives[2];  // any string
        return Push(out, stack, k, b);
      }
      // The next key is any property from f.a on, skipping optional ones only.
      for (int32_t i = f.a; i < props; ++i) {
        // An optional property is offered only if its value fits under the
        // depth limit (a required one always does: see min_frames_).
        const bool fits = static_cast<int64_t>(stack.size()) + min_frames_[n.properties[i].node] <= kMaxGrammarDepth;
        if (!n.properties[i].required && !fits) continue;
        std::vector<JsonFrame> copy = stack;
        copy.back().a = i + 1;
        JsonFrame k;
        k.type = kKey, k.node = f.node, k.a = i;
        Push(out, copy, k, b);
        if (n.properties[i].required) break;
      }
      return;
  }
}

void JsonGrammar::StepArray(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const {
  JsonFrame& f = stack.back();
  const SchemaNode& n = schema_.nodes[f.node];
  auto item = [&] {
    JsonFrame v;
    v.type = kValue, v.node = n.items;
    Push(out, stack, v, b);
  };
  switch (f.phase) {
    case kArrOpen:
      if (b == '[') f.phase = kArrFirst, Emit(out, stack);
      return;
    case kArrFirst:
      if (b == ']') {
        if (n.min_items > 0) return;
        stack.pop_back();
        return ChildDone(out, stack, nullptr);
      }
      if (n.max_items == 0) return;
      return item();
    case kArrNext:
      if (b == ']' && f.a >= n.min_items) {
        stack.pop_back();
        return ChildDone(out, stack, nullptr);
      }
      if (b == ',' && (n.max_items < 0 || f.a < n.max_items)) f.phase = kArrComma, Emit(out, stack);
      return;
    case kArrComma:
      if (b == ' ') return f.phase = kArrCommaSpaced, Emit(out, stack);
      return item();
    default:
      return item();
  }
}

void JsonGrammar::StepString(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const {
  JsonFrame& f = stack.back();
  const SchemaNode& n = schema_.nodes[f.node];
  const bool counted = n.min_length > 0 || n.max_length >= 0;
  auto start_char = [&] {  // a new character begins: within maxLength?
    if (!counted) return true;
    if (n.max_length >= 0 && f.a >= n.max_length) return false;
    f.a += 1;
    return true;
  };
  if (f.phase == kStrOpen) {
    if (b == '"') f.phase = kStrBody, Emit(out, stack);
    return;
  }
  if (f.phase == kStrEscape) {
    if (b == 'u') return f.phase = kStrHex, f.extra = 4, Emit(out, stack);
    if (std::strchr("\"\\/bfnrt", b) && b != 0) f.phase = kStrBody, Emit(out, stack);
    return;
  }
  if (f.phase == kStrHex) {
    if (!Hex(b)) return;
    if (--f.extra == 0) f.phase = kStrBody;
    return Emit(out, stack);
  }
  if (f.extra > 0) {  // inside a multi-byte UTF-8 character
    if ((b & 0xC0) != 0x80) return;
    // The second byte after E0, ED, F0, F4 has a narrower range (no overlong
    // forms, surrogates or code points past U+10FFFF): f.b holds the lead.
    const uint8_t lead = static_cast<uint8_t>(f.b);
    if ((lead == 0xE0 && b < 0xA0) || (lead == 0xED && b > 0x9F) || (lead == 0xF0 && b < 0x90) ||
        (lead == 0xF4 && b > 0x8F))
      return;
    f.b = 0;
    f.extra -= 1;
    return Emit(out, stack);
  }
  if (b == '"') {
    if (counted && f.a < n.min_length) return;
    stack.pop_back();
    return ChildDone(out, stack, nullptr);
  }
  if (b < 0x20 || b == 0x7F) return;  // control characters must be escaped (DEL allowed by JSON, refused: unreadable)
  uint16_t cont = 0;
  if (b >= 0x80) {
    if (b >= 0xC2 && b <= 0xDF) cont = 1;
    else if (b >= 0xE0 && b <= 0xEF) cont = 2;
    else if (b >= 0xF0 && b <= 0xF4) cont = 3;
    else return;  // a continuation byte without a lead, or an invalid lead
  }
  if (!start_char()) return;
  if (b == '\\') f.phase = kStrEscape;
  f.extra = cont;
  f.b = cont ? b : 0;
  Emit(out, stack);
}

void JsonGrammar::StepNumber(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const {
  JsonFrame& f = stack.back();
  const SchemaNode& n = schema_.nodes[f.node];
  const bool integer = n.kind == SchemaKind::kInteger, exp = !integer && !n.no_exponent;
  const bool zero = !n.no_zero_lead;
  uint8_t next = 255;
  switch (f.phase) {
    case kNumStart:
      next = b == '-' && !n.no_negative ? kNumMinus : b == '0' ? (zero ? kNumZero : 255) : Digit(b) ? kNumInt : 255;
      break;
    case kNumMinus: next = b == '0' ? (zero ? kNumZero : 255) : Digit(b) ? kNumInt : 255; break;
    case kNumZero:
    case kNumInt:
      if (f.phase == kNumInt && Digit(b) && (n.max_digits < 0 || f.b < n.max_digits)) next = kNumInt;
      else if (!integer && b == '.') next = kNumDot;
      else if (exp && (b == 'e' || b == 'E')) next = kNumE;
      break;
    case kNumDot: next = Digit(b) ? kNumFrac : 255; break;
    case kNumFrac: next = Digit(b) ? kNumFrac : exp && (b == 'e' || b == 'E') ? kNumE : 255; break;
    case kNumE: next = (b == '+' || b == '-') ? kNumESign : Digit(b) ? kNumExp : 255; break;
    case kNumESign: next = Digit(b) ? kNumExp : 255; break;
    case kNumExp: next = Digit(b) && f.extra < 2 ? kNumExp : 255; break;  // |exponent| <= 99: a double holds it
  }
  // At most 32 characters: a number does not go on for ever. A character
  // after which the number cannot end ('-', '.', 'e', an exponent sign)
  // needs room for the digit that must follow, or the number would be stuck.
  const bool must_continue = next == kNumMinus || next == kNumDot || next == kNumE || next == kNumESign;
  if (next != 255 && f.a < (must_continue ? 31 : 32)) {
    if (next == kNumInt || next == kNumZero) f.b += 1;  // digits before the point
    if (next == kNumExp) f.extra += 1;
    f.phase = next, f.a += 1;
    return Emit(out, stack);
  }
  if (!CanEnd(f.phase)) return;
  stack.pop_back();  // the byte belongs to what follows the number
  ChildDone(out, stack, &b);
}

void JsonGrammar::StepLiteral(Builder& out, std::vector<JsonFrame>& stack, uint8_t b) const {
  JsonFrame& f = stack.back();
  const SchemaNode& n = schema_.nodes[f.node];
  const std::string& text = f.type == kKey ? n.properties[f.a].key : n.literals[f.a];
  if (f.b >= static_cast<int32_t>(text.size()) || static_cast<uint8_t>(text[f.b]) != b) return;
  f.b += 1;
  if (f.b < static_cast<int32_t>(text.size())) return Emit(out, stack);
  stack.pop_back();
  ChildDone(out, stack, nullptr);
}

void JsonGrammar::Advance(const JsonState& in, uint8_t b, JsonState* out) const {
  out->Clear();
  Builder builder{out};
  thread_local std::vector<JsonFrame> stack;
  for (int64_t s = 0; s < in.stacks(); ++s) {
    stack.assign(in.frames.begin() + in.starts[s], in.frames.begin() + in.starts[s + 1]);
    Step(builder, stack, b);
  }
  if (out->stacks() <= 1) return;
  // Alternatives that reached the same stack are one: keep the set small.
  struct Span {
    uint32_t begin, end;
  };
  thread_local std::vector<Span> spans;
  thread_local JsonState sorted;
  spans.clear();
  for (int64_t s = 0; s < out->stacks(); ++s) spans.push_back({out->starts[s], out->starts[s + 1]});
  const JsonFrame* f = out->frames.data();
  auto less = [f](const Span& x, const Span& y) {
    return std::lexicographical_compare(f + x.begin, f + x.end, f + y.begin, f + y.end);
  };
  auto equal = [f](const Span& x, const Span& y) {
    return std::equal(f + x.begin, f + x.end, f + y.begin, f + y.end);
  };
  std::sort(spans.begin(), spans.end(), less);
  spans.erase(std::unique(spans.begin(), spans.end(), equal), spans.end());
  sorted.Clear();
  for (const Span& sp : spans) {
    sorted.frames.insert(sorted.frames.end(), f + sp.begin, f + sp.end);
    sorted.starts.push_back(static_cast<uint32_t>(sorted.frames.size()));
  }
  std::swap(*out, sorted);
}

bool JsonGrammar::Accepting(const JsonState& s) const {
  for (int64_t i = 0; i < s.stacks(); ++i) {
    const int64_t size = s.starts[i + 1] - s.starts[i];
    if (size == 0) return true;
    const JsonFrame& top = s.frames[s.starts[i + 1] - 1];
    if (size == 1 && top.type == kNumber && CanEnd(top.phase)) return true;  // a top-level number
  }
  return false;
}

int64_t JsonGrammar::StringRoom(const JsonState& s) const {
  int64_t room = -1;
  for (int64_t i = 0; i < s.stacks(); ++i) {
    if (s.starts[i + 1] == s.starts[i]) return -1;
    const JsonFrame& top = s.frames[s.starts[i + 1] - 1];
    if (top.type != kString || top.phase != kStrBody || top.extra != 0) return -1;
    const SchemaNode& n = schema_.nodes[top.node];
    const int64_t r = n.max_length < 0 ? INT64_MAX : n.max_length - top.a;
    room = std::max(room, r);
  }
  return room;
}

JsonGrammar JsonGrammar::StringProbe() {
  auto schema = CompileJsonSchema(nlohmann::json{{"type", "string"}, {"maxLength", int64_t{1} << 30}});
  return JsonGrammar(std::move(*schema));
}

int64_t JsonGrammar::StringPending(const JsonState& s) const {
  if (s.stacks() != 1 || s.starts[1] == 0) return 0;
  const JsonFrame& top = s.frames[s.starts[1] - 1];
  if (top.type != kString) return 0;
  return top.phase == kStrEscape ? 1 : top.extra;  // extra: hex digits or UTF-8 continuation bytes
}

int64_t JsonGrammar::StringChars(const JsonState& s) const {
  if (s.stacks() != 1 || s.starts[1] == 0) return -1;
  const JsonFrame& top = s.frames[s.starts[1] - 1];
  return top.type == kString ? top.a : -1;
}

// ---- The fewest bytes to a complete document (decoding under a token budget).

namespace {
constexpr int64_t kNever = JsonGrammar::kUnfinishable;
int64_t Add(int64_t a, int64_t b) { return std::min(kNever, a + b); }
int64_t Times(int64_t count, int64_t bytes) { return count > 0 && bytes >= kNever / count ? kNever : count * bytes; }
int64_t Key(const SchemaProperty& p) { return static_cast<int64_t>(p.key.size()); }
}  // namespace

void JsonGrammar::ComputeMinBytes() {
  const auto& nodes = schema_.nodes;
  min_bytes_.assign(nodes.size(), kNever);
  for (bool changed = true; changed;) {  // a fixpoint, like min_frames_
    changed = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      const SchemaNode& n = nodes[i];
      int64_t bytes = 1;  // a number: one digit
      switch (n.kind) {
        case SchemaKind::kObject: {  // '{' "key":value, ... '}' over the required properties
          bytes = 2;
          int64_t required = 0;
          for (const auto& p : n.properties)
            if (p.required && !n.free_form) bytes = Add(bytes, Key(p) + 1 + min_bytes_[p.node]), ++required;
          bytes = Add(bytes, std::max<int64_t>(required - 1, 0));
          break;
        }
        case SchemaKind::kArray:
          bytes = n.min_items == 0 ? 2 : Add(Times(n.min_items, Add(min_bytes_[n.items], 1)), 1);
          break;
        case SchemaKind::kString: bytes = Add(2, n.min_length); break;
        case SchemaKind::kLiterals:
          bytes = kNever;
          for (const auto& l : n.literals) bytes = std::min<int64_t>(bytes, l.size());
          break;
        case SchemaKind::kAnyOf:
          bytes = kNever;
          for (int32_t a : n.alternatives) bytes = std::min(bytes, min_bytes_[a]);
          break;
        case SchemaKind::kSequence:
          bytes = 0;
          for (int32_t a : n.alternatives) bytes = Add(bytes, min_bytes_[a]);
          break;
        default: break;
      }
      if (bytes < min_bytes_[i]) min_bytes_[i] = bytes, changed = true;
    }
  }
  required_rest_.assign(nodes.size(), {});
  after_comma_.assign(nodes.size(), {});
  parts_rest_.assign(nodes.size(), {});
  int64_t widest = 0, longest_key = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const SchemaNode& n = nodes[i];
    if (min_bytes_[i] < kNever) widest = std::max(widest, min_bytes_[i]);
    if (n.kind == SchemaKind::kSequence) {
      auto& rest = parts_rest_[i];
      rest.assign(n.alternatives.size() + 1, 0);
      for (size_t k = n.alternatives.size(); k-- > 0;) rest[k] = Add(rest[k + 1], min_bytes_[n.alternatives[k]]);
    }
    if (n.kind != SchemaKind::kObject || n.free_form) continue;
    const size_t props = n.properties.size();
    auto& req = required_rest_[i];
    auto& comma = after_comma_[i];
    req.assign(props + 1, 0);
    comma.assign(props + 1, kNever);
    for (size_t k = props; k-- > 0;) {
      const SchemaProperty& p = n.properties[k];
      longest_key = std::max(longest_key, Key(p));
      const int64_t own = Add(Key(p) + 1, min_bytes_[p.node]);  // "key":value
      req[k] = p.required ? Add(req[k + 1], own + 1) : req[k + 1];
      // After a comma the next key is k or, if k is optional, a later one.
      comma[k] = p.required ? Add(own, req[k + 1]) : std::min(Add(own, req[k + 1]), comma[k + 1]);
    }
  }
  // One byte commits to at most one costlier branch: a value's alternative,
  // an optional property (key, ':' and value), an array item, or the rest of
  // an escape or multi-byte character.
  max_byte_growth_ = widest + longest_key + 8;
}

int64_t JsonGrammar::ObjectRest(const JsonFrame& f, bool top) const {
  const SchemaNode& n = schema_.nodes[f.node];
  if (f.phase == kObjOpen) return min_bytes_[f.node];
  // The current property's value, and what comes after it ('}' included).
  const int64_t value = n.free_form ? min_bytes_[n.additional] : f.a > 0 ? min_bytes_[n.properties[f.a - 1].node] : 0;
  const int64_t after = n.free_form ? 1 : Add(required_rest_[f.node][f.a], 1);
  switch (f.phase) {
    case kObjColon: return Add(1 + value, after);
    case kObjValue:
    case kObjValueSpaced: return top ? Add(value, after) : after;
    case kObjNext: return after;
    default:  // kObjKey, kObjComma, kObjCommaSpaced
      if (!top) return Add(1 + value, after);  // a key is open: ':' and its value follow
      if (f.phase == kObjKey) return n.free_form || n.last_required < 0 ? 1 : required_rest_[f.node][f.a];
      if (n.free_form) return Add(2 + 1 + 1, min_bytes_[n.additional]);  // "":value}
      return Add(after_comma_[f.node][f.a], 1);
  }
}

int64_t JsonGrammar::ArrayRest(const JsonFrame& f, bool top) const {
  const SchemaNode& n = schema_.nodes[f.node];
  const int64_t item = min_bytes_[n.items], per = Add(item, 1);  // ",item"
  auto more = [&](int64_t have) { return Add(Times(std::max<int64_t>(n.min_items - have, 0), per), 1); };
  switch (f.phase) {
    case kArrOpen: return min_bytes_[f.node];
    case kArrFirst:
      if (!top) return more(1);  // the first item is open
      return n.min_items == 0 ? 1 : Add(item, more(1));
    case kArrNext: return more(f.a);
    default: return top ? Add(item, more(f.a + 1)) : more(f.a + 1);  // after a comma
  }
}

int64_t JsonGrammar::FrameRest(const JsonFrame& f, bool top) const {
  switch (f.type) {
    case kValue: return min_bytes_[f.node];
    case kObject: return ObjectRest(f, top);
    case kArray: return ArrayRest(f, top);
    case kNumber: return CanEnd(f.phase) ? 0 : 1;
    case kSeq: return parts_rest_[f.node][top ? f.a : f.a + 1];
    case kString: {
      const SchemaNode& n = schema_.nodes[f.node];
      if (f.phase == kStrOpen) return Add(2, n.min_length);
      const bool counted = n.min_length > 0 || n.max_length >= 0;
      const int64_t need = counted ? std::max<int64_t>(n.min_length - f.a, 0) : 0;
      return Add((f.phase == kStrEscape ? 1 : f.extra) + 1, need);
    }
    default: {  // kKey, kLiteral
      const SchemaNode& n = schema_.nodes[f.node];
      const std::string& text = f.type == kKey ? n.properties[f.a].key : n.literals[f.a];
      return static_cast<int64_t>(text.size()) - f.b;
    }
  }
}

int64_t JsonGrammar::StackRest(const JsonFrame* begin, const JsonFrame* end, bool open_child) const {
  int64_t bytes = 0;
  for (const JsonFrame* f = begin; f < end; ++f) bytes = Add(bytes, FrameRest(*f, f + 1 == end && !open_child));
  return bytes;
}

int64_t JsonGrammar::MinToFinish(const JsonState& s) const {
  int64_t best = kNever;
  for (int64_t i = 0; i < s.stacks(); ++i)
    best = std::min(best, StackRest(s.frames.data() + s.starts[i], s.frames.data() + s.starts[i + 1], false));
  return best;
}

void JsonGrammar::StringTails(const JsonState& s, std::vector<StringTail>* tails) const {
  tails->clear();
  for (int64_t i = 0; i < s.stacks(); ++i) {
    const JsonFrame* begin = s.frames.data() + s.starts[i];
    const JsonFrame* top = s.frames.data() + s.starts[i + 1] - 1;
    const SchemaNode& n = schema_.nodes[top->node];
    const bool counted = n.min_length > 0 || n.max_length >= 0;
    StringTail t;
    t.below = StackRest(begin, top, true);  // the string is their open child
    t.need = counted ? std::max<int64_t>(n.min_length - top->a, 0) : 0;
    t.room = n.max_length < 0 ? INT64_MAX : n.max_length - top->a;
    tails->push_back(t);
  }
}

}  // namespace dsv3
