// `dsv3 run`: load a checkpoint, generate from a prompt and stream the
// result, with a speed summary on stderr. `--prompt "text"` is encoded with
// the tokenizer found beside the model, or embedded in a .gguf model (BOS per
// tokenizer_config.json or the GGUF metadata), and the output streams as
// text; `--prompt-ids` prints each token id instead. Sampling flags left
// unset come from the checkpoint's generation_config.json, else greedy.
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/gguf_tokenizer.h"
#include "apps/dsv3/json_schema_flag.h"
#include "apps/dsv3/text_output.h"
#include "runtime/data_parallel.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "tokenizer/stream_decoder.h"

namespace dsv3::cli {

namespace {

struct RunOptions {
  std::string model_dir = DefaultModelDir(), prompt_ids, prompt, prompt_file, tokenizer_dir, json_schema;
  bool json_strict = false;
  GenerateOptions gen;
  SamplingFlags sampling;
  bool ignore_eos = false;
  bool quiet = false;
  std::string spec = "none";  // none | mtp | auto
  SpecOptions spec_options;
  std::string attention = "data";  // under mpirun: data (the sequence's attention on rank 0 only) | replicated
};

void PrintSpecStats(const SpecStats& s) {
  std::fprintf(stderr, "spec mtp: %lld rounds, %lld/%lld drafts accepted (%.1f%%), %.2f tokens per main forward;",
               (long long)s.rounds, (long long)s.accepted, (long long)s.drafted, 100.0 * s.acceptance(),
               s.tokens_per_forward());
  for (size_t j = 0; j < s.proposed_at.size(); ++j)
    std::fprintf(stderr, " pos%zu %.1f%%", j + 1,
                 s.proposed_at[j] ? 100.0 * s.accepted_at[j] / s.proposed_at[j] : 0.0);
  std::fprintf(stderr, "\n");
}

// --prompt: text -> ids (BOS per the tokenizer's config); also makes
// generation stop at the tokenizer's EOS unless --ignore-eos.
Expected<std::vector<int32_t>> TextPrompt(const RunOptions& o, const Tokenizer& tok, GenerateOptions& gen) {
  std::vector<int32_t> ids;
  DSV3_RETURN_IF_ERROR(EncodeForModel(tok, o.prompt, "--prompt", ids));
  if (!o.ignore_eos) AddTokenizerStops(tok, gen);
  return ids;
}

// --tokenizer DIR when given; else a .gguf model's embedded tokenizer; else
// the tokenizer.json beside the model.
Expected<std::unique_ptr<Tokenizer>> RunTokenizer(const Model& model, const RunOptions& o) {
  if (!o.tokenizer_dir.empty() || !IsGgufPath(o.model_dir)) {
    return LoadTokenizerFor(model, o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir);
  }
  DSV3_ASSIGN_OR_RETURN(auto tok, LoadGgufTokenizer(o.model_dir));
  if (tok->vocab_size() > model.config().vocab_size)
    return Status::Error(o.model_dir + ": the embedded tokenizer's " + std::to_string(tok->vocab_size()) +
                         " ids do not fit the model's vocab_size " + std::to_string(model.config().vocab_size));
  return tok;
}

// --spec mtp, or auto: with the model's MTP layer when it has one.
bool UseSpec(const RunOptions& o, const Model& model) {
  if (o.spec != "auto") return o.spec == "mtp";
  if (!model.has_mtp() && !o.quiet)
    std::fprintf(stderr, "warning: --spec auto: no MTP layer, decoding without speculation\n");
  return model.has_mtp();
}

void PrintSpeed(const GenerateStats& stats) {
  std::fprintf(stderr, "prompt %lld tokens in %.3f s (%.1f tok/s); generated %lld tokens in %.3f s (%.1f tok/s)\n",
               static_cast<long long>(stats.prompt_tokens), stats.prefill_seconds,
               stats.prompt_tokens / std::max(stats.prefill_seconds, 1e-9),
               static_cast<long long>(stats.generated_tokens), stats.decode_seconds,
               std::max<int64_t>(stats.generated_tokens - 1, 0) / std::max(stats.decode_seconds, 1e-9));
}

// What generation needs once the model is loaded.
struct Prepared {
  GenerateOptions gen;
  std::vector<int32_t> prompt;
  std::unique_ptr<Tokenizer> tok;
};

// Sampling checked against the vocabulary, then (text mode) tokenizer,
// prompt and grammar.
Status Prepare(const RunOptions& o, const Model& model, const ResolvedSampling& sampling, bool quiet, Prepared& p) {
  p.gen = o.gen;
  p.gen.sampling = sampling.options;
  // Only the logit_bias ids are left to check: against the vocabulary.
  DSV3_RETURN_IF_ERROR(p.gen.sampling.Validate(model.config().vocab_size).WithContext("--logit-bias"));
  if (!quiet) std::fprintf(stderr, "sampling: %s\n", sampling.Describe().c_str());
  p.gen.stop_at_eos = !o.ignore_eos;
  if (o.prompt.empty()) return Status::Ok();
  DSV3_ASSIGN_OR_RETURN(p.tok, RunTokenizer(model, o));
  DSV3_ASSIGN_OR_RETURN(p.prompt, TextPrompt(o, *p.tok, p.gen));
  if (!o.json_schema.empty()) {
    auto grammar = SchemaGrammar(o.json_schema, o.json_strict, *p.tok, model, p.gen);
    if (!grammar.ok()) return grammar.status().WithContext("--json-schema");
    p.gen.grammar = std::move(*grammar);
  }
  return Status::Ok();
}

// Under mpirun every rank runs all of this (the same forwards, the same
// samples); rank 0 alone prints, and every failure is agreed by all ranks.
int Run(const RunOptions& o, Common& common) {
  const bool quiet = o.quiet || common.rank() > 0;
  std::vector<int32_t> prompt;
  Status st;
  if (o.prompt.empty()) {
    auto parsed = ParseIds(o.prompt_ids);
    st = parsed.ok() ? Status::Ok() : parsed.status().WithContext("--prompt-ids");
    if (parsed.ok()) prompt = std::move(*parsed);
  }
  // Before loading: a bad flag or generation_config.json fails fast.
  auto sampling = ResolveSampling(o.sampling, o.model_dir, SamplingOptions{});
  if (st.ok() && !sampling.ok()) st = sampling.status();
  if (st = common.Agree(st); !st.ok()) return Fail(st);
  auto model = LoadOnRanks(common, o.model_dir, LoadOptions{.verbose = !quiet});
  if (!model.ok()) return Fail(model.status());
  Prepared p;
  if (st = common.Agree(Prepare(o, **model, *sampling, quiet, p)); !st.ok()) return Fail(st);
  if (p.tok) prompt = std::move(p.prompt);
  std::unique_ptr<StreamDecoder> stream = p.tok ? std::make_unique<StreamDecoder>(*p.tok) : nullptr;
  const bool use_spec = UseSpec(o, **model);
  // Under mpirun the sequence (slot 0) runs attention on rank 0 alone and
  // every rank receives its logits (and hidden rows for MTP) to sample from:
  // measured faster than every rank repeating it (docs/distributed.md), and
  // the same bits, since every product sees the rows it sees in one process.
  std::optional<DataParallelForward> dp;
  if (common.distributed() && o.attention == "data") {
    dp.emplace(*common.comm, DataParallelOptions{.hidden = use_spec, .every_rank = true});
    p.gen.runner = &*dp;
  }
  const GenerateOptions& gen = p.gen;
  GenerateStats stats;
  SpecStats spec_stats;
  bool first = true;
  std::string piece;
  Status decode_status;
  auto print = [&](int32_t token) {
    if (stream) {
      if (IsStop(**model, gen, token)) return true;  // not part of the text
      piece.clear();
      decode_status = stream->Add(token, piece);
      std::fwrite(piece.data(), 1, piece.size(), stdout);
    } else {
      std::printf(first ? "%d" : " %d", token);
    }
    std::fflush(stdout);
    first = false;
    return decode_status.ok();
  };
  auto out = use_spec ? GenerateSpeculative(**model, prompt, gen, o.spec_options, print, &stats, &spec_stats)
                      : Generate(**model, prompt, gen, print, &stats);
  if (stream) {
    piece.clear();
    stream->Flush(piece);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
  }
  std::printf("\n");
  std::fflush(stdout);  // the line ends before the statistics on stderr
  st = out.ok() ? decode_status.WithContext("decoding the output") : out.status();
  if (st = common.Agree(st); !st.ok()) return Fail(st);
  if (use_spec && !quiet) PrintSpecStats(spec_stats);
  if (!quiet) PrintSpeed(stats);
  if (!o.quiet) PrintExchangeStats(common, **model);
  return 0;
}

}  // namespace

void RegisterRun(CLI::App& app, Common& common) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand("run", "generate tokens from a prompt");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory (config.json + safetensors) or .gguf file (default: the bundled model)")
      ->capture_default_str();
  auto* ids_opt = cmd->add_option("--prompt-ids", o->prompt_ids, "prompt token ids, e.g. \"0 15 27\" (prints ids)");
  auto* text_opt = cmd->add_option("-p,--prompt", o->prompt, "prompt text (needs tokenizer.json, or a .gguf with a tokenizer; prints text)");
  auto* file_opt = cmd->add_option("-f,--prompt-file", o->prompt_file,
                                   "read the prompt text from FILE (for long prompts: one command-line argument is "
                                   "limited to 128 KiB)");
  ids_opt->excludes(text_opt);
  file_opt->excludes(text_opt)->excludes(ids_opt);
  cmd->add_option("--tokenizer", o->tokenizer_dir, "tokenizer directory (default: the model's directory, or a .gguf model's embedded tokenizer)");
  cmd->add_option("--attention", o->attention, "under mpirun: data (attention on the rank holding the sequence, "
                 "the others serve their experts) or replicated (every rank runs it)")
      ->check(CLI::IsMember({"data", "replicated"}))
      ->capture_default_str();
  cmd->add_option("-n,--max-tokens", o->gen.max_new_tokens, "tokens to generate")->capture_default_str();
  AddSamplingFlags(cmd, o->sampling, "greedy");
  cmd->add_option("--json-schema", o->json_schema, "constrain the output to JSON documents this JSON Schema file admits (needs --prompt)");
  cmd->add_flag("--json-strict", o->json_strict, "with --json-schema: refuse schema keywords that cannot be enforced (OpenAI's strict)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "keep generating past end-of-sequence tokens");
  cmd->add_flag("-q,--quiet", o->quiet, "no loading or speed messages");
  cmd->add_option("--spec", o->spec, "speculative decoding: none, mtp (the model's MTP layer drafts), auto")
      ->check(CLI::IsMember({"none", "mtp", "auto"}))
      ->capture_default_str();
  cmd->add_option("--draft-tokens", o->spec_options.draft_tokens, "draft tokens per step with --spec")
      ->check(CLI::Range(1, 16))
      ->capture_default_str();
  cmd->add_option("--draft-vocab", o->spec_options.draft_vocab, "draft only among token ids [0, N) (BPE lists frequent tokens first): a cheaper MTP head; 0 = all")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  cmd->callback([o, &common] {
    if (!o->prompt_file.empty()) {
      std::ifstream in(o->prompt_file, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      if (!in || text.str().empty()) {
        common.exit_code = Fail(Status::Error("--prompt-file: cannot read " + o->prompt_file + " (or it is empty)"));
        return;
      }
      o->prompt = text.str();
    }
    if (o->prompt.empty() && o->prompt_ids.empty()) {
      common.exit_code = Fail(Status::Error("give --prompt \"text\", --prompt-file FILE or --prompt-ids \"0 15 27\""));
      return;
    }
    if (!o->json_schema.empty() && o->prompt.empty()) {
      common.exit_code = Fail(Status::Error("--json-schema needs --prompt (the tokenizer gives each token's text)"));
      return;
    }
    common.Apply();
    common.exit_code = Run(*o, common);
  });
}

}  // namespace dsv3::cli
