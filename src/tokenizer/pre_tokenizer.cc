// Pre-tokenizer parsing and splitting; see pre_tokenizer.h.
#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/json_fields.h"

namespace dsv3 {

using nlohmann::json;

const char kGpt2Pattern[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const char* const kDeepSeekV3Patterns[3] = {
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};

namespace {

// Literal text as a PCRE2 pattern (\Q..\E cannot hold "\E", so escape by hand).
std::string QuoteLiteral(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

Expected<SplitBehavior> ParseBehavior(const json& j, const std::string& label) {
  if (!j.is_string()) return Status::Error(label + ".behavior must be a string");
  const std::string b = j.get<std::string>();
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return Status::Error(label + ".behavior '" + b + "' is not a Split behavior");
}

// Groups flagged spans into output ranges per the behavior (HF semantics).
void Group(std::vector<RegexSpan>& spans, SplitBehavior behavior, bool invert) {
  if (invert)
    for (auto& s : spans) s.is_match = !s.is_match;
  std::vector<RegexSpan> out;
  out.reserve(spans.size());
  bool prev_match = false;
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return;
    case SplitBehavior::kRemoved:
      for (const auto& s : spans)
        if (!s.is_match) out.push_back(s);
      break;
    case SplitBehavior::kMergedWithPrevious:
      for (const auto& s : spans) {
        if (s.is_match && !prev_match && !out.empty()) out.back().end = s.end;
        else out.push_back(s);
        prev_match = s.is_match;
      }
      break;
    case SplitBehavior::kMergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const auto& s = spans[k];
        if (s.is_match && !prev_match && !out.empty()) out.back().begin = s.begin;
        else out.push_back(s);
        prev_match = s.is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
    case SplitBehavior::kContiguous:
      for (const auto& s : spans) {
        if (s.is_match == prev_match && !out.empty()) out.back().end = s.end;
        else out.push_back(s);
        prev_match = s.is_match;
      }
      break;
  }
  spans.swap(out);
}

}  // namespace

Status PreTokenizer::ParseStep(const json& j, const std::string& label, bool* has_byte_level) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    return Status::Error(label + " must be an object with a string 'type'");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array())
      return Status::Error(label + ".pretokenizers must be an array");
    for (size_t i = 0; i < j["pretokenizers"].size(); ++i)
      DSV3_RETURN_IF_ERROR(ParseStep(j["pretokenizers"][i], label + ".pretokenizers[" + std::to_string(i) + "]",
                                     has_byte_level));
    return Status::Ok();
  }
  PreTokenizerStep step;
  if (type == "Split") {
    const json* p = j.contains("pattern") ? &j["pattern"] : nullptr;
    std::string pattern;
    if (p && p->is_object() && p->contains("Regex") && (*p)["Regex"].is_string()) {
      pattern = (*p)["Regex"].get<std::string>();
    } else if (p && p->is_object() && p->contains("String") && (*p)["String"].is_string()) {
      pattern = QuoteLiteral((*p)["String"].get<std::string>());
    } else {
      return Status::Error(label + ".pattern must be {\"Regex\": ...} or {\"String\": ...}");
    }
    DSV3_ASSIGN_OR_RETURN(step.regex, Regex::Compile(pattern, label + ".pattern"));
    if (!j.contains("behavior")) return Status::Error(label + ".behavior is required");
    DSV3_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(j["behavior"], label));
    if (j.contains("invert") && !j["invert"].is_boolean()) return Status::Error(label + ".invert must be true or false");
    step.invert = BoolField(j, "invert", false);
  } else if (type == "ByteLevel") {
    *has_byte_level = true;
    step.add_prefix_space = BoolField(j, "add_prefix_space", false);
    if (BoolField(j, "use_regex", true)) {
      DSV3_ASSIGN_OR_RETURN(step.regex, Regex::Compile(kGpt2Pattern, label + " (GPT-2 regex)"));
    }
  } else {
    return Status::Error(label + ".type '" + type +
                         "' is not supported (dsv3 reads Sequence, Split and ByteLevel pre-tokenizers)");
  }
  steps_.push_back(std::move(step));
  return Status::Ok();
}

Expected<PreTokenizer> PreTokenizer::FromJson(const json& j, bool* has_byte_level) {
  PreTokenizer pt;
  *has_byte_level = false;
  if (j.is_null()) return pt;
  DSV3_RETURN_IF_ERROR(pt.ParseStep(j, "pre_tokenizer", has_byte_level));
  return pt;
}

Expected<PreTokenizer> PreTokenizer::FromPatterns(const std::vector<std::string>& patterns) {
  PreTokenizer pt;
  for (size_t i = 0; i < patterns.size(); ++i) {
    PreTokenizerStep step;
    DSV3_ASSIGN_OR_RETURN(step.regex, Regex::Compile(patterns[i], "pattern " + std::to_string(i)));
    pt.steps_.push_back(std::move(step));
  }
  return pt;
}

Status PreTokenizer::Split(std::string_view text, PreTokenizerScratch& scratch,
                           std::vector<std::string_view>& pieces) const {
  pieces.clear();
  scratch.owned.clear();
  if (text.empty()) return Status::Ok();
  pieces.push_back(text);
  for (const PreTokenizerStep& step : steps_) {
    scratch.next.clear();
    for (std::string_view piece : pieces) {
      if (step.add_prefix_space && piece.front() != ' ') {
        scratch.owned.emplace_back(1, ' ');
        scratch.owned.back().append(piece);
        piece = scratch.owned.back();
      }
      if (!step.regex) {
        scratch.next.push_back(piece);
        continue;
      }
      scratch.spans.clear();
      DSV3_RETURN_IF_ERROR(step.regex->Split(piece, scratch.regex, scratch.spans));
      Group(scratch.spans, step.behavior, step.invert);
      for (const RegexSpan& s : scratch.spans)
        if (s.end > s.begin) scratch.next.push_back(piece.substr(s.begin, s.end - s.begin));
    }
    pieces.swap(scratch.next);
  }
  return Status::Ok();
}

}  // namespace dsv3
