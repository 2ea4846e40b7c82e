// dsv3: one binary, one subcommand per job (run, inspect, logits, ...).
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <set>
#include <stdexcept>
#include <thread>

#include "apps/dsv3/commands.h"
#include "core/parallel.h"

namespace dsv3::cli {

void Common::Apply() const { SetNumThreads(threads); }

std::string DefaultModelDir() {
  const char* env = std::getenv("DSV3_MODEL");
  return env && *env ? env : DSV3_DEFAULT_MODEL;
}

int MaxThreads() {
  // libgomp fails (or crashes) creating tens of thousands of threads; more
  // than a few per core only adds contention.
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::max(64, 8 * cores);
}

std::string CommandName(const CLI::App& app) {
  const auto subs = app.get_subcommands();
  return subs.empty() ? std::string("...") : subs.front()->get_name();
}

int Fail(const Status& status) {
  std::fprintf(stderr, "dsv3: error: %s\n", status.message().c_str());
  return 1;
}

Expected<std::vector<int32_t>> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ' || text[i] == ',' || text[i] == '\t' || text[i] == '\n') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && text[j] != ' ' && text[j] != ',' && text[j] != '\t' && text[j] != '\n') ++j;
    const std::string word = text.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(word.c_str(), &end, 10);
    if (end != word.c_str() + word.size() || errno || v < 0 || v > INT32_MAX)
      return Status::Error("'" + word + "' is not a token id (a non-negative integer)");
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  return ids;
}

}  // namespace dsv3::cli

namespace {

// A command that does not run expert-parallel yet, started by mpirun with
// several ranks: every rank refuses it the same way.
struct SeveralRanksRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Commands that run under mpirun -np N > 1 (docs/distributed.md); the
// others refuse before parsing their flags.
void RefuseSeveralRanks(CLI::App& app, const dsv3::cli::Common& common) {
  static const std::set<std::string> kDistributed = {"run", "logits", "perplexity", "inspect", "tokenize",
                                                       "bench", "train", "serve", "chat"};
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
    if (kDistributed.count(sub->get_name())) continue;
    sub->preparse_callback([&common, name = sub->get_name()](size_t) {
      if (common.distributed())
        throw SeveralRanksRefused("'dsv3 " + name + "' does not run expert-parallel yet; under mpirun with " +
                                  std::to_string(common.comm->size()) + " ranks only run, logits, perplexity, bench, "
                                  "inspect, tokenize, train, serve and chat work (issues 14, 15)");
    });
  }
}

}  // namespace

namespace dsv3::cli {

// The exit status, and whether every rank reported the failure (if any).
struct Outcome {
  int code = 0;
  bool agreed = false;
};

Outcome Main(int argc, char** argv, dist::Comm& comm) {
  CLI::App app{"dsv3: DeepSeek-V3-architecture models in C++ (run, inspect, logits)"};
  app.require_subcommand(1);
  app.fallthrough();
  dsv3::cli::Common common;
  common.comm = &comm;
  app.add_option("-t,--threads", common.threads, "worker threads (default: all cores)")
      ->check(CLI::Range(0, dsv3::cli::MaxThreads()));
  app.add_option("--expert-map", common.expert_map,
                 "under mpirun: the routed experts of each rank ('RANK: E E A-B' per line; default: contiguous "
                 "blocks)");
  app.add_flag("--no-exchange-overlap", common.no_exchange_overlap,
               "under mpirun: run the shared experts after the expert dispatch instead of while its rows travel "
               "(to measure what the overlap hides)");
  app.add_option("--micro-batches", common.micro_batches,
                 "under mpirun, data-parallel attention (serve; --attention data): 2 exchanges each MoE layer's "
                 "tokens as two micro-batches when a step holds several sequences, one's rows travelling while "
                 "the other's experts run (measured slower on one 2-core machine: docs/distributed.md)")
      ->check(CLI::Range(1, 2))
      ->capture_default_str();
  app.add_flag("--exact-activations", common.exact_activations,
               "GGUF block-type weights (Q4_K, Q8_0, ...): multiply with float32 activations (the exact path) "
               "instead of int8 activations per 32 values from 8 tokens on (docs/quantization.md)");
  app.add_flag("--int8-fp8", common.int8_fp8,
               "FP8 weights: multiply as int8 with VNNI, weights with a power-of-two step per 16 rows x 32 "
               "columns (kept as int8 tiles from load; with --mmap made per product from 8 tokens on) and "
               "activations per 32 values (docs/performance.md gives the bound)");
  app.add_flag("--repack", common.repack,
               "GGUF Q4_K and Q8_0 matrices: interleave rows while loading (Q4_K four rows at a time, Q8_0 into "
               "int8 tiles of 32 rows; the same bytes, faster kernels; docs/quantization.md), like llama.cpp's "
               "run-time repacking (-rtr)");
  app.add_option("--attention-form", common.attention_form,
                 "MLA attention: absorbed (queries in the latent space; the decode form), decompressed (K/V expanded "
                 "per head; the prefill form) or auto (per batch, the one with fewer flops; docs/performance.md)")
      ->check(CLI::IsMember({"auto", "absorbed", "decompressed"}))
      ->capture_default_str();
  dsv3::cli::RegisterRun(app, common);
  dsv3::cli::RegisterInspect(app, common);
  dsv3::cli::RegisterLogits(app, common);
  dsv3::cli::RegisterServe(app, common);
  dsv3::cli::RegisterInit(app, common);
  dsv3::cli::RegisterBench(app, common);
  dsv3::cli::RegisterConvert(app, common);
  dsv3::cli::RegisterTokenize(app, common);
  dsv3::cli::RegisterChat(app, common);
  dsv3::cli::RegisterTrainTokenizer(app, common);
  dsv3::cli::RegisterTrain(app, common);
  dsv3::cli::RegisterPrepareData(app, common);
  dsv3::cli::RegisterPerplexity(app, common);
  dsv3::cli::RegisterPlan(app, common);  // issue 14 planner
  dsv3::cli::RegisterNiah(app, common);  // issue 17
  RefuseSeveralRanks(app, common);
  // Commands run inside parse(); whatever escapes them is reported as one
  // error line (allocation failure included), never as an abort.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Not agreed: ranks may have been given different flags (mpirun's
    // A : B form), and the others may already wait in an exchange.
    return {app.exit(e), false};
  } catch (const SeveralRanksRefused& e) {
    return {Fail(Status::Error(e.what())), false};
  } catch (const std::bad_alloc&) {
    return {Fail(Status::Error("out of memory while running 'dsv3 " + CommandName(app) +
                               "' (free memory, or use a smaller model, context, batch or -t)")),
            false};
  } catch (const std::exception& e) {
    return {Fail(Status::Error("'dsv3 " + CommandName(app) + "' stopped: " + e.what())), false};
  }
  return {common.exit_code, common.error_agreed};
}

}  // namespace dsv3::cli

int main(int argc, char** argv) {
  // Under mpirun: join the job (rank 0 alone prints results); else one rank.
  auto comm = dsv3::dist::Comm::Init(&argc, &argv);
  if (!comm.ok()) return dsv3::cli::Fail(comm.status());
  if ((*comm)->rank() > 0 && !std::freopen("/dev/null", "w", stdout)) (*comm)->Abort("cannot silence stdout");
  const dsv3::cli::Outcome out = dsv3::cli::Main(argc, argv, **comm);
  // A failure some ranks may not share ends the whole job now: the others
  // could be waiting for this rank inside an exchange.
  if (out.code != 0 && (*comm)->distributed() && !out.agreed)
    (*comm)->Abort("exiting with status " + std::to_string(out.code) + " (see the error above)", out.code);
  return out.code;
}

