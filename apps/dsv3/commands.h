// Subcommands of the dsv3 CLI. Each Register* adds one subcommand whose
// callback applies the common flags, runs, and stores the exit code. Also
// the helpers several subcommands share (the sampling flags of run and chat).
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "dist/comm.h"
#include "model/model.h"
#include "runtime/generation_config.h"
#include "runtime/sampler.h"

namespace dsv3::cli {

// Flags every subcommand shares (given before or after the subcommand).
struct Common {
  int threads = 0;  // 0: all cores
  int exit_code = 0;
  void Apply() const;  // applies the thread count
  // The process group (under mpirun: this rank of the job; else one rank)
  // and --expert-map (ranks.cc, docs/distributed.md).
  dist::Comm* comm = nullptr;
  std::string expert_map;
  bool no_exchange_overlap = false;  // under mpirun: shared experts after the dispatch, not during it
  int micro_batches = 1;             // under mpirun, data-parallel steps of several sequences: 1 or 2
  // --exact-activations: GGUF block-type weights keep float32 activations
  // (LoadOptions::exact_block_activations) instead of int8 per 32 values.
  bool exact_activations = false;
  // --int8-fp8: FP8 weights multiply as int8 with VNNI (LoadOptions::int8_fp8).
  bool int8_fp8 = false;
  // --repack: Q4_K and Q8_0 matrices interleaved at load (LoadOptions::repack).
  bool repack = false;
  // --attention-form: MLA in the absorbed form, the decompressed form, or
  // chosen per batch by estimated cost (LoadOptions::attention_form).
  std::string attention_form = "auto";
  bool error_agreed = false;  // a failure every rank reported (exit cleanly)
  int rank() const { return comm ? comm->rank() : 0; }
  bool distributed() const { return comm && comm->distributed(); }
  // Every rank calls it at the same point: the first failing rank's status,
  // on every rank (dist::Comm::Agree); marks a failure as agreed.
  Status Agree(const Status& local);
};

// Loads `path` for this rank: under mpirun with several ranks, only its
// routed experts (Common::expert_map or contiguous blocks); the outcome is
// agreed by all ranks, which then check that they loaded the same
// checkpoint (config + tensor index hash) and the same expert placement.
Expected<std::unique_ptr<Model>> LoadOnRanks(Common& common, const std::string& path, LoadOptions options);
// Under mpirun, rank 0 prints its expert exchange's totals to stderr.
void PrintExchangeStats(const Common& common, const Model& model);

void RegisterRun(CLI::App& app, Common& common);
void RegisterInspect(CLI::App& app, Common& common);
void RegisterLogits(CLI::App& app, Common& common);
void RegisterServe(CLI::App& app, Common& common);
void RegisterInit(CLI::App& app, Common& common);
void RegisterBench(CLI::App& app, Common& common);
void RegisterConvert(CLI::App& app, Common& common);
void RegisterTokenize(CLI::App& app, Common& common);
void RegisterChat(CLI::App& app, Common& common);
void RegisterTrainTokenizer(CLI::App& app, Common& common);
void RegisterTrain(CLI::App& app, Common& common);
void RegisterPrepareData(CLI::App& app, Common& common);
void RegisterPerplexity(CLI::App& app, Common& common);
void RegisterPlan(CLI::App& app, Common& common);  // issue 14 planner
void RegisterNiah(CLI::App& app, Common& common);  // issue 17 needle in a haystack

// The model used when --model is omitted: $DSV3_MODEL, else the bundled
// model of the source tree this binary was built from (models/brown-10m).
std::string DefaultModelDir();

// Prints "dsv3: error: <message>" to stderr and returns 1.
int Fail(const Status& status);

// The largest -t accepted: max(64, 8 x this machine's cores).
int MaxThreads();
// The subcommand being run ("run", "inspect", ...), for top-level errors.
std::string CommandName(const CLI::App& app);

// Parses "0 15 27" / "0,15,27" into ids; the error names the bad entry.
Expected<std::vector<int32_t>> ParseIds(const std::string& text);

// --- Sampling flags, shared by `run` and `chat` --------------------------
// Each holds the text given, or nothing: what no flag sets comes from the
// checkpoint's generation_config.json, else the command's built-in default.
// Values are parsed by SetSamplingParam (as chat's /set parses them), so a
// bad one is a "dsv3: error:" naming the flag, not a CLI11 usage error.
struct SamplingFlags {
  std::optional<std::string> temperature, top_k, top_p, min_p, presence_penalty, frequency_penalty,
      repetition_penalty, seed;
  std::vector<std::string> logit_bias;  // "TOKEN=BIAS" each, repeatable
};

struct SamplingFlag {
  const char* names;  // CLI11 spelling; the first long name is the one errors show
  const char* param;  // SetSamplingParam's name
  std::optional<std::string> SamplingFlags::*member;
  const char* help;
};

inline const std::vector<SamplingFlag>& SamplingFlagTable() {
  using F = SamplingFlags;
  static const std::vector<SamplingFlag> table = {
      {"--temperature", "temperature", &F::temperature, "0 = greedy"},
      {"--top-k", "top_k", &F::top_k, "keep the k most likely tokens (0 = off)"},
      {"--top-p", "top_p", &F::top_p, "nucleus sampling mass (1 = off)"},
      {"--min-p", "min_p", &F::min_p, "drop tokens below min_p * max prob (0 = off)"},
      {"--presence-penalty", "presence_penalty", &F::presence_penalty,
       "[-2, 2], OpenAI's: lowers the logit of every token generated so far (0 = off)"},
      {"--frequency-penalty", "frequency_penalty", &F::frequency_penalty,
       "[-2, 2], OpenAI's: lowers a generated token's logit by this times its count (0 = off)"},
      {"--repetition-penalty,--repeat-penalty", "repetition_penalty", &F::repetition_penalty,
       "(0, 10], HF / llama.cpp's: divides the positive logits of tokens in the prompt or output (1 = off)"},
      {"--seed", "seed", &F::seed, "sampling seed (same seed, same output; default 0)"},
  };
  return table;
}

// Adds the sampling flags to `cmd`; `builtin` describes the command's
// defaults for the help text ("greedy").
inline void AddSamplingFlags(CLI::App* cmd, SamplingFlags& flags, const std::string& builtin) {
  for (const SamplingFlag& f : SamplingFlagTable())
    cmd->add_option(f.names, flags.*f.member, std::string(f.help))->type_name("X");
  cmd->add_option("--logit-bias", flags.logit_bias, "TOKEN=BIAS: add BIAS in [-100, 100] to the token's logit; "
                  "-100 bans it (repeatable, or comma-separated)")->type_name("ID=B");
  cmd->footer("Sampling flags left unset take the model's generation_config.json values (temperature, top_p, top_k, "
              "min_p, repetition_penalty; \"do_sample\": false means greedy), else the built-in defaults (" +
              builtin + ").\n");
}

// What a command samples with and where the settings came from.
struct ResolvedSampling {
  SamplingOptions options;
  std::string defaults;            // "defaults from DIR/generation_config.json" or "built-in defaults"
  std::vector<std::string> flags;  // the flags given, as spelled in the table
  // "temperature 0.6, top_p 0.95, seed 0 (defaults from X; set by --seed)"
  std::string Describe() const {
    std::string s = DescribeSampling(options) + " (" + defaults;
    for (size_t i = 0; i < flags.size(); ++i) s += (i == 0 ? "; set by " : ", ") + flags[i];
    return s + ")";
  }
};

// `base` (the command's built-in defaults), the generation_config.json of
// the model at `model_path` over it, then the flags given. Each flag is
// checked as it is applied, so an error names it ("--top-p: top_p must be in
// (0, 1] (got 2.000000)"); logit_bias ids are checked against the
// vocabulary later, once the model is loaded.
inline Expected<ResolvedSampling> ResolveSampling(const SamplingFlags& flags, const std::string& model_path,
                                                  const SamplingOptions& base) {
  DSV3_ASSIGN_OR_RETURN(GenerationConfig config, LoadGenerationConfig(model_path));
  ResolvedSampling r;
  r.options = ApplyGenerationConfig(config, base);
  r.defaults = config.found() ? "defaults from " + config.path : "built-in defaults";
  auto apply = [&r](const std::string& flag, const char* param, const std::string& value) {
    Status st = SetSamplingParam(r.options, param, value);
    if (st.ok()) st = r.options.Validate();
    if (st.ok() && (r.flags.empty() || r.flags.back() != flag)) r.flags.push_back(flag);
    return st.WithContext(flag);
  };
  for (const SamplingFlag& f : SamplingFlagTable()) {
    const std::string name = std::string(f.names).substr(0, std::string(f.names).find(','));
    if (const auto& value = flags.*f.member) DSV3_RETURN_IF_ERROR(apply(name, f.param, *value));
  }
  for (const std::string& value : flags.logit_bias) DSV3_RETURN_IF_ERROR(apply("--logit-bias", "logit_bias", value));
  return r;
}

}  // namespace dsv3::cli
