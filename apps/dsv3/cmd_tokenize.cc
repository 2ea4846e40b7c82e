// `dsv3 tokenize`: text <-> ids with a tokenizer directory (or the tokenizer
// embedded in a .gguf file). Each input line
// (stdin or --file) is handled on its own: encode prints the line's ids
// (no BOS, newline excluded) space-separated; --decode turns a line of ids
// back into text. --chat renders an OpenAI-style messages file with the
// native chat format (--text prints the prompt, otherwise its ids).
// --bench measures encode throughput over the input.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/gguf_tokenizer.h"
#include "core/mapped_file.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace dsv3::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer_dir, file, chat_file;
  bool decode = false, add_generation_prompt = false, text = false, bench = false;
  int repeat = 3;
};

Expected<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& path) {
  return IsGgufPath(path) ? LoadGgufTokenizer(path) : Tokenizer::Load(path);
}

Expected<std::string> ReadInput(const std::string& file) {
  if (!file.empty()) return ReadTextFile(file, kMaxDataFileBytes);  // a regular file: a directory is an error
  std::ostringstream ss;
  ss << std::cin.rdbuf();
  return ss.str();
}

// Splits on '\n' only ('\r' stays part of a line); no line after a final '\n'.
std::vector<std::string_view> Lines(const std::string& text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.emplace_back(text.data() + start, end - start);
    start = end + 1;
  }
  return lines;
}

int Chat(const Tokenizer& tok, const TokenizeOptions& o) {
  auto text = ReadTextFile(o.chat_file);
  if (!text.ok()) return Fail(text.status().WithContext("--chat"));
  auto messages = ParseChatMessagesText(*text, o.chat_file);
  if (!messages.ok()) return Fail(messages.status());
  auto format = ChatFormat::FromTemplate(tok.config().chat_template, tok.config().bos_token, tok.config().eos_token);
  if (!format.ok()) return Fail(format.status().WithContext(o.tokenizer_dir));
  auto prompt = format->Render(*messages, o.add_generation_prompt);
  if (!prompt.ok()) return Fail(prompt.status().WithContext(o.chat_file));
  if (o.text) {
    std::fwrite(prompt->data(), 1, prompt->size(), stdout);
    std::printf("\n");
  } else {
    std::printf("%s\n", JoinIds(tok.Encode(*prompt)).c_str());  // the template already has BOS
  }
  return 0;
}

// Each pass loads the tokenizer afresh, so every pass starts with an empty
// word cache (as the references do in their single pass).
int Bench(const std::string& dir, const std::vector<std::string_view>& lines, int repeat) {
  size_t bytes = 0, tokens = 0;
  double best = 1e30;
  std::vector<int32_t> ids;
  for (int r = 0; r < std::max(repeat, 1); ++r) {
    auto loaded = LoadTokenizer(dir);
    if (!loaded.ok()) return Fail(loaded.status());
    const Tokenizer& tok = **loaded;
    bytes = tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::string_view line : lines) {
      ids.clear();
      (void)tok.EncodeInto(line, ids);
      bytes += line.size(), tokens += ids.size();
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("dsv3 encode: %zu lines, %zu bytes, %zu tokens, best of %d cold passes: %.3f s, %.2f MB/s, %.0f tokens/s\n",
              lines.size(), bytes, tokens, std::max(repeat, 1), best, bytes / best / 1e6, tokens / best);
  return 0;
}

int Tokenize(const TokenizeOptions& o) {
  auto tok = LoadTokenizer(o.tokenizer_dir);
  if (!tok.ok()) return Fail(tok.status());
  if (!o.chat_file.empty()) return Chat(**tok, o);
  auto input = ReadInput(o.file);
  if (!input.ok()) return Fail(input.status().WithContext("--file"));
  const std::string label = o.file.empty() ? "stdin" : o.file;
  const auto lines = Lines(*input);
  if (o.bench) return Bench(o.tokenizer_dir, lines, o.repeat);
  std::string out;
  std::vector<int32_t> ids;
  for (size_t n = 0; n < lines.size(); ++n) {
    out.clear();
    if (o.decode) {
      auto parsed = ParseIds(std::string(lines[n]));
      if (!parsed.ok()) return Fail(parsed.status().WithContext(label + " line " + std::to_string(n + 1)));
      auto text = (*tok)->Decode(*parsed);
      if (!text.ok()) return Fail(text.status().WithContext(label + " line " + std::to_string(n + 1)));
      out = *text;
    } else {
      ids.clear();
      bool repaired = false;
      const Status s = (*tok)->EncodeInto(lines[n], ids, &repaired);
      if (!s.ok()) return Fail(s.WithContext(label + " line " + std::to_string(n + 1)));
      if (repaired)
        std::fprintf(stderr, "dsv3: warning: %s line %zu is not valid UTF-8; invalid bytes were encoded as U+FFFD\n",
                     label.c_str(), n + 1);
      out = JoinIds(ids);
    }
    out += '\n';
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

}  // namespace

void RegisterTokenize(CLI::App& app, Common& common) {
  auto o = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "text -> token ids (one line each), --decode for ids -> text");
  cmd->add_option("--tokenizer", o->tokenizer_dir, "directory with tokenizer.json (+ tokenizer_config.json), or a .gguf file with a tokenizer")
      ->required();
  cmd->add_option("-f,--file", o->file, "input file (default: stdin)");
  cmd->add_flag("--decode", o->decode, "input lines are ids; print their text");
  cmd->add_option("--chat", o->chat_file, "render an OpenAI-style messages JSON file with the chat format");
  cmd->add_flag("--add-generation-prompt", o->add_generation_prompt, "with --chat: end with the assistant prompt");
  cmd->add_flag("--text", o->text, "with --chat: print the prompt text instead of its ids");
  cmd->add_flag("--bench", o->bench, "measure encode throughput over the input lines");
  cmd->add_option("--repeat", o->repeat, "with --bench: passes (the best is reported)")->capture_default_str();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Tokenize(*o);
  });
}

}  // namespace dsv3::cli
