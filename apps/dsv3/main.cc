// dsv3: one binary, one subcommand per job (run, inspect, logits, ...).
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "apps/dsv3/commands.h"
#include "core/parallel.h"

namespace dsv3::cli {

void Common::Apply() const { SetNumThreads(threads); }

std::string DefaultModelDir() {
  const char* env = std::getenv("DSV3_MODEL");
  return env && *env ? env : DSV3_DEFAULT_MODEL;
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
      ->check(CLI::NonNegativeNumber);
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return common.exit_code;
}
