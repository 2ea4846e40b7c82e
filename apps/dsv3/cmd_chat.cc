// `dsv3 chat --model DIR`: an interactive, multi-turn chat on the terminal.
// Each turn renders the whole conversation with the native chat format
// chosen from tokenizer_config.json's chat_template and streams the reply;
// `<think>...</think>` reasoning is shown apart (dimmed on a terminal) and
// not fed back. Ctrl-C stops the reply being generated (the chat goes on),
// Ctrl-D at the prompt exits. --raw-prompt sends each line as plain text
// (BOS + text, no history). --spec mtp drafts with the model's MTP layer
// (speculative.h): same replies, fewer main-model passes.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/text_output.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "tokenizer/chat.h"
#include "tokenizer/stream_decoder.h"

namespace dsv3::cli {

namespace {

struct ChatOptions {
  std::string model_dir = DefaultModelDir(), tokenizer_dir, system;
  GenerateOptions gen;
  bool raw_prompt = false, hide_reasoning = false, quiet = false;
  std::string spec = "none";  // none | mtp | auto; Chat() resolves auto
  SpecOptions spec_options;
};

volatile std::sig_atomic_t g_interrupted = 0;  // set by SIGINT, read by the token callback
void OnInterrupt(int) { g_interrupted = 1; }

struct Printer {
  bool tty = isatty(STDOUT_FILENO);
  bool hide_reasoning = false;
  bool in_reasoning = false;
  void Reasoning(const std::string& s) {
    if (s.empty() || hide_reasoning) return;
    if (!in_reasoning) std::fputs(tty ? "\x1b[2m[thinking] " : "[thinking] ", stdout), in_reasoning = true;
    std::fwrite(s.data(), 1, s.size(), stdout);
  }
  void Content(const std::string& s) {
    if (s.empty()) return;
    EndReasoning();
    std::fwrite(s.data(), 1, s.size(), stdout);
  }
  void EndReasoning() {
    if (!in_reasoning) return;
    std::fputs(tty ? "\x1b[0m\n" : "\n[/thinking]\n", stdout);
    in_reasoning = false;
  }
};

// Generates one reply to `prompt`; returns the answer text (no reasoning).
Expected<std::string> Reply(const Model& model, const Tokenizer& tok, const ChatOptions& o,
                            const std::vector<int32_t>& prompt, const GenerateOptions& gen) {
  StreamDecoder stream(tok);
  ReasoningParser parser;
  Printer printer{.hide_reasoning = o.hide_reasoning};
  std::string text, reasoning, content, answer;
  Status decode_status;
  g_interrupted = 0;
  auto flush = [&] {
    printer.Reasoning(reasoning);
    printer.Content(content);
    answer += content;
    reasoning.clear(), content.clear();
    std::fflush(stdout);
  };
  GenerateStats stats;
  auto on_token = [&](int32_t token) {
    if (g_interrupted) return false;
    if (IsStop(model, gen, token)) return true;
    text.clear();
    decode_status = stream.Add(token, text);
    parser.Add(text, reasoning, content);
    flush();
    return decode_status.ok() && !g_interrupted;
  };
  auto out = o.spec == "mtp" ? GenerateSpeculative(model, prompt, gen, o.spec_options, on_token, &stats)
                             : Generate(model, prompt, gen, on_token, &stats);
  text.clear();
  stream.Flush(text);
  parser.Add(text, reasoning, content);
  parser.Flush(reasoning, content);
  flush();
  printer.EndReasoning();
  std::printf(g_interrupted ? " [stopped]\n" : "\n");
  if (!out.ok()) return out.status();
  if (!decode_status.ok()) return decode_status;
  if (!o.quiet)
    std::fprintf(stderr, "[%lld prompt tokens, %lld generated, %.1f tok/s]\n",
                 static_cast<long long>(stats.prompt_tokens), static_cast<long long>(stats.generated_tokens),
                 std::max<int64_t>(stats.generated_tokens - 1, 0) / std::max(stats.decode_seconds, 1e-9));
  return answer;
}

int Chat(ChatOptions o) {
  auto model = Model::Load(o.model_dir, LoadOptions{.verbose = !o.quiet});
  if (!model.ok()) return Fail(model.status());
  if (o.spec == "mtp" && !(*model)->has_mtp())
    return Fail(Status::Error("--spec mtp: the model has no MTP layer (num_nextn_predict_layers is 0)"));
  if (o.spec == "auto") {
    o.spec = (*model)->has_mtp() ? "mtp" : "none";
    if (o.spec == "none") std::fprintf(stderr, "dsv3: warning: --spec auto: no MTP layer, chatting without speculation\n");
  }
  auto tok = LoadTokenizerFor(**model, o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir);
  if (!tok.ok()) return Fail(tok.status());
  const TokenizerConfig& cfg = (*tok)->config();
  std::optional<ChatFormat> format;
  if (!o.raw_prompt) {
    auto f = ChatFormat::FromTemplate(cfg.chat_template, cfg.bos_token, cfg.eos_token);
    if (!f.ok()) return Fail(f.status());
    format = *f;
  }
  GenerateOptions gen = o.gen;
  AddTokenizerStops(**tok, gen);
  struct sigaction sa = {};
  sa.sa_handler = OnInterrupt;
  sa.sa_flags = SA_RESTART;  // a Ctrl-C at the prompt does not end the read
  sigaction(SIGINT, &sa, nullptr);
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system, {}});
  if (!o.quiet)
    std::fprintf(stderr, "dsv3 chat (%s format). Ctrl-C stops a reply, Ctrl-D exits.\n",
                 format ? format->name() : "raw");
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    std::vector<int32_t> ids;
    if (format) {
      messages.push_back({"user", line, {}});
      auto prompt = format->Render(messages, /*add_generation_prompt=*/true);
      if (!prompt.ok()) return Fail(prompt.status());
      ids = (*tok)->Encode(*prompt);  // the template already starts with BOS
    } else {
      ids = (*tok)->Encode(line, {.add_bos = cfg.add_bos_token});
    }
    // Replies shrink to the context the conversation leaves.
    const int64_t room = (*model)->config().max_position_embeddings - static_cast<int64_t>(ids.size());
    if (room <= 0) {
      std::fprintf(stderr, "dsv3: error: the conversation (%zu tokens) fills the model's context (%lld); "
                   "restart the chat\n", ids.size(), static_cast<long long>((*model)->config().max_position_embeddings));
      if (format) messages.pop_back();
      continue;
    }
    GenerateOptions turn = gen;
    turn.max_new_tokens = std::min(gen.max_new_tokens, room);
    auto answer = Reply(**model, **tok, o, ids, turn);
    if (!answer.ok()) {
      std::fprintf(stderr, "dsv3: error: %s\n", answer.status().message().c_str());
      if (format) messages.pop_back();
      continue;
    }
    if (format) messages.push_back({"assistant", *answer, {}});
  }
  std::printf("\n");
  return 0;
}

}  // namespace

void RegisterChat(CLI::App& app, Common& common) {
  auto o = std::make_shared<ChatOptions>();
  o->gen.max_new_tokens = 512;
  CLI::App* cmd = app.add_subcommand("chat", "interactive multi-turn chat (streams replies)");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory (config.json, safetensors, tokenizer files; default: the bundled model)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer_dir, "tokenizer directory (default: the model directory)");
  cmd->add_option("--system", o->system, "system prompt");
  cmd->add_flag("--raw-prompt", o->raw_prompt, "no chat template: send each line as plain text");
  cmd->add_flag("--hide-reasoning", o->hide_reasoning, "do not print <think> reasoning");
  cmd->add_option("-n,--max-tokens", o->gen.max_new_tokens, "tokens per reply")->capture_default_str();
  cmd->add_option("--temperature", o->gen.sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-k", o->gen.sampling.top_k, "keep the k most likely tokens (0 = off)")->capture_default_str();
  cmd->add_option("--top-p", o->gen.sampling.top_p, "nucleus sampling mass (1 = off)")->capture_default_str();
  cmd->add_option("--min-p", o->gen.sampling.min_p, "drop tokens below min_p * max prob")->capture_default_str();
  cmd->add_option("--seed", o->gen.sampling.seed, "sampling seed (same seed, same output)")->capture_default_str();
  cmd->add_flag("-q,--quiet", o->quiet, "no loading or speed messages");
  cmd->add_option("--spec", o->spec, "speculative decoding: none, mtp (the model's MTP layer drafts), auto")
      ->check(CLI::IsMember({"none", "mtp", "auto"}))->capture_default_str();
  cmd->add_option("--draft-tokens", o->spec_options.draft_tokens, "draft tokens per step with --spec")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--draft-vocab", o->spec_options.draft_vocab, "draft only among token ids [0, N) (BPE lists frequent tokens first): a cheaper MTP head; 0 = all")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Chat(*o);
  });
}

}  // namespace dsv3::cli
