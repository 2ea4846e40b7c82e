// Compares dsv3's tokenizer with the reference outputs tests/node/reference.js
// wrote (HF tokenizers in Rust = ground truth, @huggingface/tokenizers in JS,
// @huggingface/jinja for chat templates) and fails on any difference.
//   parity_check encode TOKENIZER_DIR TEXT_FILE PREFIX [--no-roundtrip]
//     ids == Rust ids on every line; decode(encode(x)) == x (x with invalid
//     UTF-8 repaired; skipped for tokenizers that add a prefix space);
//     streaming decode == one-shot decode; decode(Rust ids) == Rust's
//     decode; JS-vs-Rust disagreements are listed, not failed.
//   parity_check chat TOKENIZER_DIR CASES_JSON RENDERED_JSON
//     native chat prompt == Jinja rendering, for each case with and without
//     add_generation_prompt.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "tokenizer/chat.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace dsv3 {
namespace {

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::vector<int32_t> ParseIdLine(const std::string& line) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string::npos) j = line.size();
    if (j > i) ids.push_back(std::stoi(line.substr(i, j - i)));
    i = j + 1;
  }
  return ids;
}

int Fail(const Status& s) {
  std::fprintf(stderr, "parity_check: %s\n", s.message().c_str());
  return 1;
}

struct Counts {
  size_t lines = 0, tokens = 0, id_mismatch = 0, roundtrip = 0, stream = 0, decode = 0, js_disagree = 0;
};

void Report(size_t line, const char* what, const std::string& detail, size_t* counter) {
  if (++*counter <= 5) std::printf("  line %zu: %s: %s\n", line, what, detail.substr(0, 300).c_str());
}

int CheckEncode(const std::string& dir, const std::string& text_file, const std::string& prefix, bool roundtrip) {
  auto tok = Tokenizer::Load(dir);
  if (!tok.ok()) return Fail(tok.status());
  auto text = ReadTextFile(text_file), rust = ReadTextFile(prefix + ".rust.ids"), js = ReadTextFile(prefix + ".js.ids"),
       dec = ReadTextFile(prefix + ".rust.decoded.json");
  for (const auto* f : {&text, &rust, &js, &dec})
    if (!f->ok()) return Fail(f->status());
  const auto lines = SplitLines(*text), rust_lines = SplitLines(*rust), js_lines = SplitLines(*js);
  const auto decoded = nlohmann::json::parse(*dec);
  if (rust_lines.size() != lines.size() || js_lines.size() != lines.size() || decoded.size() != lines.size())
    return Fail(Status::Error("reference files do not have one line per input line"));
  Counts c;
  StreamDecoder stream(**tok);
  for (size_t n = 0; n < lines.size(); ++n) {
    const std::vector<int32_t> ours = (*tok)->Encode(lines[n]), want = ParseIdLine(rust_lines[n]);
    ++c.lines, c.tokens += want.size();
    if (ours != want) Report(n + 1, "ids differ from Rust", JoinIds(ours) + " vs " + rust_lines[n], &c.id_mismatch);
    if (js_lines[n] != rust_lines[n]) Report(n + 1, "JS reference disagrees with Rust (not a failure)", js_lines[n], &c.js_disagree);
    auto back = (*tok)->Decode(ours);
    if (!back.ok() || (roundtrip && *back != utf8::Lossy(lines[n]))) Report(n + 1, "decode(encode(x)) != x", back.ok() ? *back : back.status().message(), &c.roundtrip);
    std::string streamed;
    stream.Reset();
    for (int32_t id : ours) (void)stream.Add(id, streamed);
    stream.Flush(streamed);
    if (!back.ok() || streamed != *back) Report(n + 1, "streaming decode != one-shot decode", streamed, &c.stream);
    auto ref_decoded = (*tok)->Decode(want);
    if (!ref_decoded.ok() || *ref_decoded != decoded[n].get<std::string>()) Report(n + 1, "decode differs from Rust", ref_decoded.ok() ? *ref_decoded : "", &c.decode);
  }
  std::printf("%s: %zu lines, %zu tokens compared: %zu id mismatches vs Rust, %zu round-trip failures, %zu streaming "
              "failures, %zu decode mismatches vs Rust; JS reference disagrees with Rust on %zu lines\n",
              text_file.c_str(), c.lines, c.tokens, c.id_mismatch, c.roundtrip, c.stream, c.decode, c.js_disagree);
  return c.id_mismatch || c.roundtrip || c.stream || c.decode ? 1 : 0;
}

int CheckChat(const std::string& dir, const std::string& cases_file, const std::string& rendered_file) {
  auto tok = Tokenizer::Load(dir);
  if (!tok.ok()) return Fail(tok.status());
  auto cases_text = ReadTextFile(cases_file), rendered_text = ReadTextFile(rendered_file);
  if (!cases_text.ok()) return Fail(cases_text.status());
  if (!rendered_text.ok()) return Fail(rendered_text.status());
  const auto& cfg = (*tok)->config();
  auto format = ChatFormat::FromTemplate(cfg.chat_template, cfg.bos_token, cfg.eos_token);
  if (!format.ok()) return Fail(format.status());
  const auto cases = nlohmann::json::parse(*cases_text);
  const auto rendered = nlohmann::json::parse(*rendered_text);
  size_t compared = 0, mismatches = 0, k = 0;
  for (const auto& c : cases) {
    auto messages = ParseChatMessages(c["messages"], cases_file);
    if (!messages.ok()) return Fail(messages.status());
    for (bool agp : {false, true}) {
      auto prompt = format->Render(*messages, agp);
      const std::string want = rendered[k++].get<std::string>();
      ++compared;
      if (!prompt.ok() || *prompt != want) {
        ++mismatches;
        std::printf("  case '%s' (add_generation_prompt=%d):\n    dsv3:  %s\n    jinja: %s\n", c.value("name", "?").c_str(),
                    agp, prompt.ok() ? prompt->c_str() : prompt.status().message().c_str(), want.c_str());
      }
    }
  }
  std::printf("chat (%s format): %zu prompts compared with @huggingface/jinja, %zu mismatches\n", format->name(),
              compared, mismatches);
  return mismatches ? 1 : 0;
}

}  // namespace
}  // namespace dsv3

int main(int argc, char** argv) {
  if ((argc == 5 || (argc == 6 && std::string(argv[5]) == "--no-roundtrip")) && std::string(argv[1]) == "encode")
    return dsv3::CheckEncode(argv[2], argv[3], argv[4], argc == 5);
  if (argc == 5 && std::string(argv[1]) == "chat") return dsv3::CheckChat(argv[2], argv[3], argv[4]);
  std::fprintf(stderr, "usage: parity_check encode DIR TEXT PREFIX [--no-roundtrip] | chat DIR CASES RENDERED\n");
  return 2;
}
