// Subcommands of the dsv3 CLI. Each Register* adds one subcommand whose
// callback applies the common flags, runs, and stores the exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"

namespace dsv3::cli {

// Flags every subcommand shares (given before or after the subcommand).
struct Common {
  int threads = 0;  // 0: all cores
  int exit_code = 0;
  void Apply() const;  // applies the thread count
};

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

}  // namespace dsv3::cli
