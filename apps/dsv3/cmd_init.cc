// `dsv3 init`: writes a random-weight checkpoint (Hugging Face layout,
// sharded, with the index) for a config.json, e.g. bench/bench-moe.json for
// the benchmarks or a small config for the trainer to start from.
#include <cstdio>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/progress.h"
#include "core/mapped_file.h"
#include "model/init_checkpoint.h"

namespace dsv3::cli {

namespace {

struct InitCmdOptions {
  std::string config_path, out_dir, dtype = "fp8";
  uint64_t seed = 0;
  double std = 0.006;
  uint64_t shard_mb = 2048;
};

int Init(const InitCmdOptions& o) {
  auto text = ReadTextFile(o.config_path);
  if (!text.ok()) return Fail(text.status());
  if (o.dtype != "fp8" && o.dtype != "bf16")
    return Fail(Status::Error("--dtype must be fp8 or bf16, not '" + o.dtype + "'"));
  InitOptions opt;
  opt.fp8 = o.dtype == "fp8";
  opt.seed = o.seed;
  opt.std = o.std;
  opt.max_shard_bytes = o.shard_mb << 20;
  ProgressBar bar("init " + o.out_dir);
  opt.progress = [&bar](uint64_t done, uint64_t total) { bar.Update(done, total); };
  Status st = WriteRandomCheckpoint(*text, o.out_dir, opt);
  bar.Done();
  if (!st.ok()) return Fail(st.WithContext(o.config_path));
  std::fprintf(stderr, "wrote %s (%s, seed %llu, std %g)\n", o.out_dir.c_str(), o.dtype.c_str(),
               static_cast<unsigned long long>(o.seed), o.std);
  return 0;
}

}  // namespace

void RegisterInit(CLI::App& app, Common& common) {
  auto o = std::make_shared<InitCmdOptions>();
  CLI::App* cmd = app.add_subcommand("init", "write a random-weight checkpoint for a config.json");
  cmd->add_option("--config", o->config_path, "config.json to build (e.g. bench/bench-moe.json)")->required();
  cmd->add_option("--out", o->out_dir, "output directory")->required();
  cmd->add_option("--dtype", o->dtype, "linear weights: fp8 (e4m3, 128x128 block scales) or bf16")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed")->capture_default_str();
  cmd->add_option("--std", o->std, "normal init standard deviation")->capture_default_str();
  cmd->add_option("--shard-mb", o->shard_mb, "largest shard in MiB")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Init(*o);
  });
}

}  // namespace dsv3::cli
