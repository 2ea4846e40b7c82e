// dsv3: one binary, one subcommand per job (run, inspect, logits, ...).
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
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

int main(int argc, char** argv) {
  CLI::App app{"dsv3: DeepSeek-V3-architecture models in C++ (run, inspect, logits)"};
  app.require_subcommand(1);
  app.fallthrough();
  dsv3::cli::Common common;
  app.add_option("-t,--threads", common.threads, "worker threads (default: all cores)")
      ->check(CLI::Range(0, dsv3::cli::MaxThreads()));
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
  // Commands run inside parse(); whatever escapes them is reported as one
  // error line (allocation failure included), never as an abort.
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::bad_alloc&) {
    return dsv3::cli::Fail(dsv3::Status::Error("out of memory while running 'dsv3 " + dsv3::cli::CommandName(app) +
                                               "' (free memory, or use a smaller model, context, batch or -t)"));
  } catch (const std::exception& e) {
    return dsv3::cli::Fail(dsv3::Status::Error("'dsv3 " + dsv3::cli::CommandName(app) + "' stopped: " + e.what()));
  }
  return common.exit_code;
}
