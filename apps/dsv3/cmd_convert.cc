// `dsv3 convert --to bf16|fp8|gguf IN_DIR OUT`: checkpoint conversion (see
// src/convert/convert.h and docs/convert.md). Prints a progress bar and a
// summary on stderr; any failure leaves nothing under OUT, and SIGINT/SIGTERM
// remove the partial output (OUT.dsv3-partial, OUT.tmp) before the process
// dies of the signal.
#include <cstdio>

#include "apps/dsv3/commands.h"
#include "convert/convert.h"
#include "io/temp_file.h"

namespace dsv3::cli {

namespace {

struct ConvertFlags {
  std::string to, scale_fmt, type = "bf16";
  int64_t buffer_mb = 64;
  bool quiet = false, pure = false;
  ConvertOptions options;
};

Expected<ConvertOptions> Resolve(ConvertFlags f) {
  ConvertOptions& o = f.options;
  if (f.to == "bf16") o.target = ConvertTarget::kBf16;
  else if (f.to == "fp8") o.target = ConvertTarget::kFp8;
  else if (f.to == "gguf") o.target = ConvertTarget::kGguf;
  else if (f.to == "w4a16") o.target = ConvertTarget::kW4A16;
  else if (f.to == "w8a16") o.target = ConvertTarget::kW8A16;
  else return Status::Error("--to: '" + f.to + "' is not bf16, fp8, gguf, w4a16 or w8a16");
  if (!f.scale_fmt.empty() && f.scale_fmt != "ue8m0") return Status::Error("--scale-fmt: only ue8m0 is supported");
  if (!f.scale_fmt.empty() && o.target != ConvertTarget::kFp8) return Status::Error("--scale-fmt applies to --to fp8 only");
  o.scale_ue8m0 = f.scale_fmt == "ue8m0";
  const auto preset = FindGgufPreset(f.type);
  if (!preset) return Status::Error("--type: '" + f.type + "' is not one of " + GgufPresetNames());
  o.gguf_type = preset->base;
  if (preset->mix && !f.pure) o.gguf_mix = preset->file_type;
  if (f.pure && o.target != ConvertTarget::kGguf) return Status::Error("--pure applies to --to gguf only");
  if (o.allow_missing_scale && o.target != ConvertTarget::kBf16)
    return Status::Error("--allow-missing-scale applies to --to bf16 only");
  if (f.buffer_mb < 1) return Status::Error("--buffer-mb: must be at least 1");
  o.buffer_bytes = f.buffer_mb << 20;
  o.progress = !f.quiet;
  return o;
}

}  // namespace

void RegisterConvert(CLI::App& app, Common& common) {
  auto f = std::make_shared<ConvertFlags>();
  CLI::App* cmd = app.add_subcommand("convert", "convert a checkpoint: FP8 <-> BF16 safetensors, or to GGUF");
  cmd->add_option("--to", f->to, "target: bf16, fp8, gguf, or w4a16 / w8a16 (int4 / int8 weight-only, group 128, "
                 "compressed-tensors as vLLM loads it)")->required();
  cmd->add_option("input", f->options.input, "input checkpoint directory")->required();
  cmd->add_option("output", f->options.output, "output directory (bf16, fp8) or .gguf file")->required();
  cmd->add_flag("--force", f->options.force, "replace an existing output");
  cmd->add_flag("--allow-missing-scale", f->options.allow_missing_scale,
                "bf16: copy FP8 weights that have no scale tensor unchanged instead of failing");
  cmd->add_option("--scale-fmt", f->scale_fmt, "fp8: scale format (ue8m0: power-of-two scales)");
  cmd->add_option("--type", f->type,
                  "gguf: " + GgufPresetNames() + " (default bf16; K-quants and q4_0..q5_1, iq4_* are llama-quantize's mixes)");
  cmd->add_flag("--pure", f->pure, "gguf: every matrix in --type's base type, no mix (llama-quantize --pure)");
  cmd->add_flag("--mtp", f->options.gguf_mtp, "gguf: keep MTP layers (dsv3 reads them; llama.cpp does not)");
  cmd->add_option("--name", f->options.gguf_name, "gguf: general.name (default: the input directory name)");
  cmd->add_option("--buffer-mb", f->buffer_mb, "working memory for one chunk of rows, MiB (default 64)");
  cmd->add_flag("-q,--quiet", f->quiet, "no progress bar");
  cmd->callback([f, &common] {
    InstallSignalCleanup();
    common.Apply();
    auto options = Resolve(*f);
    if (!options.ok()) {
      common.exit_code = Fail(options.status());
      return;
    }
    auto summary = Convert(*options);
    if (!summary.ok()) {
      common.exit_code = Fail(summary.status());
      return;
    }
    std::fprintf(stderr, "%s\n", FormatSummary(*options, *summary).c_str());
    common.exit_code = 0;
  });
}

}  // namespace dsv3::cli
