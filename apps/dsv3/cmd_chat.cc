// `dsv3 chat --model DIR`: an interactive, multi-turn chat on the terminal.
// Each turn renders the whole conversation with the native chat format
// chosen from tokenizer_config.json's chat_template and streams the reply;
// `<think>...</think>` reasoning is shown apart (dimmed on a terminal) and
// not fed back. Ctrl-C stops the reply being generated (the chat goes on),
// Ctrl-D at the prompt exits. Lines starting with '/' are commands: /clear,
// /system, /save and /load (the conversation as an OpenAI-style messages
// JSON array), /set (sampling settings, checked before they are used),
// /help, /exit. Sampling starts from the flags, else the checkpoint's
// generation_config.json, else greedy, and the start-up banner says which.
// --raw-prompt sends each line as plain text (BOS + text, no history).
// --spec mtp drafts with the model's MTP layer (speculative.h): same
// replies, fewer main-model passes. Under mpirun (docs/distributed.md) rank 0
// reads the terminal and every line (and /load's file) is broadcast, so all
// ranks take the same turns and generate the same tokens (their MoE
// exchanges line up); rank 0 prints and writes /save's file.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/text_output.h"
#include "core/mapped_file.h"
#include "io/temp_file.h"
#include "runtime/data_parallel.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "tokenizer/chat.h"
#include "tokenizer/stream_decoder.h"

namespace dsv3::cli {

namespace {

struct ChatOptions {
  std::string model_dir = DefaultModelDir(), tokenizer_dir, system;
  GenerateOptions gen;
  SamplingFlags sampling;
  bool raw_prompt = false, hide_reasoning = false, quiet = false;
  std::string spec = "none";  // none | mtp | auto; Chat() resolves auto
  SpecOptions spec_options;
};

// What the slash commands change: the conversation and the settings of the
// next reply.
struct Session {
  dist::Comm* comm = nullptr;          // under mpirun: rank 0 reads, every rank takes the turns
  const ChatFormat* format = nullptr;  // null with --raw-prompt (no history)
  int64_t vocab = 0;                   // for /set's logit checks
  std::vector<ChatMessage> messages;   // the system prompt first, when there is one
  GenerateOptions gen;
  bool done = false;  // /exit
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
  std::fflush(stdout);  // the reply's line ends before the statistics on stderr
  if (!out.ok()) return out.status();
  if (!decode_status.ok()) return decode_status;
  if (!o.quiet)
    std::fprintf(stderr, "[%lld prompt tokens, %lld generated, %.1f tok/s]\n",
                 static_cast<long long>(stats.prompt_tokens), static_cast<long long>(stats.generated_tokens),
                 std::max<int64_t>(stats.generated_tokens - 1, 0) / std::max(stats.decode_seconds, 1e-9));
  return answer;
}

// --- Slash commands ---------------------------------------------------------

constexpr char kCommands[] = "/clear, /system, /save, /load, /set, /help, /exit";

// An error that ends the command, not the chat.
void CommandError(const std::string& message) {
  std::fflush(stdout);  // in order after what the chat printed
  std::fprintf(stderr, "dsv3: error: %s\n", message.c_str());
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
}

void PrintHelp() {
  std::printf(
      "/clear              forget the conversation (the system prompt stays)\n"
      "/system [TEXT]      set the system prompt (without TEXT: remove it)\n"
      "/save FILE          write the conversation as an OpenAI-style messages JSON array\n"
      "/load FILE          continue a saved conversation (a messages array or {\"messages\": [...]})\n"
      "/set [PARAM VALUE]  change a setting, or show them all: temperature, top_k, top_p, min_p,\n"
      "                    presence_penalty, frequency_penalty, repetition_penalty, seed, max_tokens\n"
      "/help               this list\n"
      "/exit               leave (as Ctrl-D does)\n"
      "A message that starts with '/' is sent by typing it as '//'.\n");
}

void PrintSettings(const Session& s) {
  std::printf("sampling: %s; max_tokens %lld\n", DescribeSampling(s.gen.sampling).c_str(),
              static_cast<long long>(s.gen.max_new_tokens));
}

void SetSystem(Session& s, const std::string& text) {
  const bool had = !s.messages.empty() && s.messages.front().role == "system";
  if (text.empty()) {
    if (had) s.messages.erase(s.messages.begin());
    std::printf(had ? "system prompt removed\n" : "no system prompt to remove\n");
    return;
  }
  if (had) s.messages.front().content = text;
  else s.messages.insert(s.messages.begin(), ChatMessage{"system", text, {}});
  std::printf("system prompt set\n");
}

void Clear(Session& s) {
  const bool keep = !s.messages.empty() && s.messages.front().role == "system";
  s.messages.resize(keep ? 1 : 0);
  std::printf(keep ? "conversation cleared (the system prompt stays)\n" : "conversation cleared\n");
}

// Ordered: "role" before "content", as people write them.
nlohmann::ordered_json MessagesJson(const std::vector<ChatMessage>& messages) {
  using json = nlohmann::ordered_json;
  json out = json::array();
  for (const ChatMessage& m : messages) {
    json j = {{"role", m.role}, {"content", m.content ? json(*m.content) : json(nullptr)}};
    for (const ToolCall& t : m.tool_calls)
      j["tool_calls"].push_back({{"type", t.type}, {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
    out.push_back(std::move(j));
  }
  return out;
}

// Written under FILE.tmp and renamed, so a failed write leaves no half file.
Status SaveConversation(const std::vector<ChatMessage>& messages, const std::string& path) {
  if (path.empty()) return Status::Error("give a file name: /save FILE");
  // Invalid UTF-8 typed at the prompt is saved as U+FFFD instead of throwing.
  const std::string text = MessagesJson(messages).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  DSV3_ASSIGN_OR_RETURN(auto file, TempFile::Create(path));
  DSV3_RETURN_IF_ERROR(file->Write(text.data(), text.size()));
  return file->Commit();
}

// Under mpirun: rank 0's text (ok = it has one) in `text` on every rank;
// false on every rank when rank 0 has none. One rank: `ok` unchanged.
bool ShareText(dist::Comm* comm, bool ok, std::string& text) {
  if (!comm || !comm->distributed()) return ok;
  int64_t n = ok ? static_cast<int64_t>(text.size()) : -1;
  comm->BroadcastPatiently(&n, sizeof n, 0);  // the other ranks wait while the user types
  if (n < 0) return false;
  text.resize(static_cast<size_t>(n));
  comm->Broadcast(text.data(), n, 0);
  return true;
}

bool IsRank0(const Session& s) { return !s.comm || s.comm->rank() == 0; }

// The file's messages, checked by the parser (roles, fields) and by
// rendering them with the chat format, before they replace the conversation.
// Under mpirun rank 0 reads the file and the others parse its bytes.
Expected<std::vector<ChatMessage>> LoadConversation(const Session& s, const std::string& path,
                                                    const ChatFormat& format) {
  if (path.empty()) return Status::Error("give a file name: /load FILE");
  Expected<std::string> read = IsRank0(s) ? ReadTextFile(path) : Expected<std::string>(std::string());
  std::string text = read.ok() ? *read : std::string();
  if (!ShareText(s.comm, read.ok(), text))
    return read.ok() ? Status::Error(path + ": rank 0 could not read it") : read.status();
  DSV3_ASSIGN_OR_RETURN(std::vector<ChatMessage> messages, ParseChatMessagesText(text, path));
  if (auto rendered = format.Render(messages, /*add_generation_prompt=*/true); !rendered.ok())
    return rendered.status().WithContext(path);
  return messages;
}

void Set(Session& s, const std::string& args) {
  if (args.empty()) return PrintSettings(s);
  const size_t space = args.find_first_of(" \t");
  std::string name = args.substr(0, space);
  const std::string value = space == std::string::npos ? "" : Trim(args.substr(space));
  for (char& c : name) c = c == '-' ? '_' : c;  // top-p as the flag spells it
  if (value.empty()) return CommandError("/set " + name + ": give a value (/set PARAM VALUE)");
  if (name == "max_tokens") {
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(value.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || n < 1 || n > (1 << 30))
      return CommandError("/set max_tokens: '" + value + "' is not a token count in [1, 2^30]");
    s.gen.max_new_tokens = n;
    return PrintSettings(s);
  }
  const auto& names = SamplingParamNames();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    std::string list;
    for (const std::string& n : names) list += n + ", ";
    return CommandError("/set: unknown parameter '" + name + "' (" + list + "max_tokens)");
  }
  SamplingOptions next = s.gen.sampling;
  Status st = SetSamplingParam(next, name, value);
  if (st.ok()) st = next.Validate(s.vocab);
  if (!st.ok()) return CommandError("/set " + name + ": " + st.message());
  s.gen.sampling = next;
  PrintSettings(s);
}

// One line that starts with '/'.
void RunCommand(const std::string& line, Session& s) {
  const size_t space = line.find_first_of(" \t");
  const std::string cmd = line.substr(0, space);
  const std::string arg = space == std::string::npos ? "" : Trim(line.substr(space));
  const bool conversation = cmd == "/clear" || cmd == "/system" || cmd == "/save" || cmd == "/load";
  if (conversation && !s.format) return CommandError(cmd + ": --raw-prompt keeps no conversation");
  if (cmd == "/help") {
    PrintHelp();
  } else if (cmd == "/set") {
    Set(s, arg);
  } else if (cmd == "/clear") {
    Clear(s);
  } else if (cmd == "/system") {
    SetSystem(s, arg);
  } else if (cmd == "/save") {
    if (!IsRank0(s)) return;  // rank 0 writes the file
    if (Status st = SaveConversation(s.messages, arg); !st.ok()) return CommandError("/save: " + st.message());
    std::printf("saved %zu message%s to %s\n", s.messages.size(), s.messages.size() == 1 ? "" : "s", arg.c_str());
  } else if (cmd == "/load") {
    auto loaded = LoadConversation(s, arg, *s.format);
    if (!loaded.ok()) return CommandError("/load: " + loaded.status().message());
    s.messages = std::move(*loaded);
    std::printf("loaded %zu message%s from %s\n", s.messages.size(), s.messages.size() == 1 ? "" : "s", arg.c_str());
  } else if (cmd == "/exit" || cmd == "/quit") {
    s.done = true;
  } else {
    CommandError("unknown command '" + cmd + "' (" + kCommands + ")");
  }
}

// --- Turns ------------------------------------------------------------------

// One user message: the conversation rendered (or the line alone with
// --raw-prompt), a reply generated and, with a chat format, both kept.
// Errors of a turn are reported and the turn forgotten; only a conversation
// that cannot be rendered ends the chat.
Status Turn(const Model& model, const Tokenizer& tok, const ChatOptions& o, Session& s, const std::string& line) {
  std::vector<int32_t> ids;
  if (s.format) {
    s.messages.push_back({"user", line, {}});
    DSV3_ASSIGN_OR_RETURN(std::string prompt, s.format->Render(s.messages, /*add_generation_prompt=*/true));
    ids = tok.Encode(prompt);  // the template already starts with BOS
  } else {
    ids = tok.Encode(line, {.add_bos = tok.config().add_bos_token});
  }
  // Replies shrink to the context the conversation leaves.
  const int64_t context = model.config().max_position_embeddings;
  const int64_t room = context - static_cast<int64_t>(ids.size());
  if (room <= 0) {
    CommandError("the conversation (" + std::to_string(ids.size()) + " tokens) fills the model's context (" +
                 std::to_string(context) + "); /clear or /load another");
    if (s.format) s.messages.pop_back();
    return Status::Ok();
  }
  GenerateOptions turn = s.gen;
  turn.max_new_tokens = std::min(s.gen.max_new_tokens, room);
  auto answer = Reply(model, tok, o, ids, turn);
  if (!answer.ok()) {
    CommandError(answer.status().message());
    if (s.format) s.messages.pop_back();
  } else if (s.format) {
    s.messages.push_back({"assistant", *answer, {}});
  }
  return Status::Ok();
}

// Reads lines until Ctrl-D or /exit.
Status Loop(const Model& model, const Tokenizer& tok, const ChatOptions& o, Session& s) {
  std::string line;
  while (!s.done) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    const bool read = IsRank0(s) && static_cast<bool>(std::getline(std::cin, line));
    if (!ShareText(s.comm, read, line)) break;
    if (line.empty()) continue;
    if (line[0] == '/' && line.compare(0, 2, "//") != 0) {
      RunCommand(line, s);
      continue;
    }
    if (line[0] == '/') line.erase(0, 1);  // "//text" sends "/text"
    DSV3_RETURN_IF_ERROR(Turn(model, tok, o, s, line));
  }
  std::printf("\n");
  return Status::Ok();
}

int Chat(ChatOptions o, Common& common) {
  // Before loading: a bad flag or generation_config.json fails fast.
  auto sampling = ResolveSampling(o.sampling, o.model_dir, SamplingOptions{});
  if (!sampling.ok()) return Fail(sampling.status());
  if (common.rank() > 0) o.quiet = true;  // rank 0 speaks for the job
  auto model = LoadOnRanks(common, o.model_dir, LoadOptions{.verbose = !o.quiet});
  if (!model.ok()) return common.error_agreed ? 1 : Fail(model.status());
  if (Status st = sampling->options.Validate((*model)->config().vocab_size); !st.ok())
    return Fail(st.WithContext("--logit-bias"));
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
  Session s;
  s.comm = common.comm;
  s.format = format ? &*format : nullptr;
  s.vocab = (*model)->config().vocab_size;
  s.gen = o.gen;
  s.gen.sampling = sampling->options;
  AddTokenizerStops(**tok, s.gen);
  // Under mpirun the conversation (one sequence) runs attention on rank 0
  // alone and every rank samples from the same gathered logits, as `run`.
  std::optional<DataParallelForward> dp;
  if (common.distributed()) {
    dp.emplace(*common.comm, DataParallelOptions{.hidden = o.spec == "mtp", .every_rank = true});
    s.gen.runner = &*dp;
  }
  if (!o.system.empty()) s.messages.push_back({"system", o.system, {}});
  if (!common.distributed()) {  // under mpirun a reply stopped on rank 0 alone would leave the others waiting
    struct sigaction sa = {};
    sa.sa_handler = OnInterrupt;
    sa.sa_flags = SA_RESTART;  // a Ctrl-C at the prompt does not end the read
    sigaction(SIGINT, &sa, nullptr);
  }
  // From here every rank meets the same errors; rank 0 reports them.
  if (common.rank() > 0 && !std::freopen("/dev/null", "w", stderr)) return 1;
  if (!o.quiet)
    std::fprintf(stderr, "dsv3 chat (%s format). Ctrl-C stops a reply, Ctrl-D exits, /help lists the commands.\n"
                 "sampling: %s\n", format ? format->name() : "raw", sampling->Describe().c_str());
  if (Status st = Loop(**model, **tok, o, s); !st.ok()) {
    common.error_agreed = true;  // every rank took the same turns to the same error
    return Fail(st);
  }
  return 0;
}

}  // namespace

void RegisterChat(CLI::App& app, Common& common) {
  auto o = std::make_shared<ChatOptions>();
  o->gen.max_new_tokens = 512;
  CLI::App* cmd = app.add_subcommand("chat", "interactive multi-turn chat (streams replies; /help lists commands)");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory (config.json, safetensors, tokenizer files; default: the bundled model)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer_dir, "tokenizer directory (default: the model directory)");
  cmd->add_option("--system", o->system, "system prompt");
  cmd->add_flag("--raw-prompt", o->raw_prompt, "no chat template: send each line as plain text");
  cmd->add_flag("--hide-reasoning", o->hide_reasoning, "do not print <think> reasoning");
  cmd->add_option("-n,--max-tokens", o->gen.max_new_tokens, "tokens per reply")->capture_default_str();
  AddSamplingFlags(cmd, o->sampling, "greedy");
  cmd->add_flag("-q,--quiet", o->quiet, "no loading or speed messages");
  cmd->add_option("--spec", o->spec, "speculative decoding: none, mtp (the model's MTP layer drafts), auto")
      ->check(CLI::IsMember({"none", "mtp", "auto"}))->capture_default_str();
  cmd->add_option("--draft-tokens", o->spec_options.draft_tokens, "draft tokens per step with --spec")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--draft-vocab", o->spec_options.draft_vocab, "draft only among token ids [0, N) (BPE lists frequent tokens first): a cheaper MTP head; 0 = all")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Chat(*o, common);
  });
}

}  // namespace dsv3::cli
