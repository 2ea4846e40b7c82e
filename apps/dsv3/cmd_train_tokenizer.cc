// `dsv3 train-tokenizer --vocab-size N --out DIR FILES...`: learns a
// byte-level BPE tokenizer from text files and writes DIR/tokenizer.json and
// DIR/tokenizer_config.json (DeepSeek-V3 special tokens, dsv3 chat template).
// Progress goes to stderr; the same inputs always give the same files.
#include <chrono>
#include <cstdio>

#include "apps/dsv3/commands.h"
#include "core/mapped_file.h"
#include "tokenizer/bpe_trainer.h"

namespace dsv3::cli {

namespace {

struct TrainTokenizerOptions {
  int64_t vocab_size = 8192, min_frequency = 2;
  std::string out;
  std::vector<std::string> files;
  bool quiet = false;
};

int TrainTokenizer(const TrainTokenizerOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  BpeTrainOptions options;
  options.vocab_size = o.vocab_size;
  options.min_frequency = o.min_frequency;
  if (!o.quiet)
    options.progress = [&](int64_t done, int64_t wanted) {
      std::fprintf(stderr, "\rtrain-tokenizer: merges %lld/%lld (%.0f%%) %.1f s", static_cast<long long>(done),
                   static_cast<long long>(wanted), wanted ? 100.0 * done / wanted : 100.0, elapsed());
    };
  BpeTrainer trainer(options);
  for (const std::string& file : o.files) {
    auto text = ReadTextFile(file, kMaxDataFileBytes);  // a corpus, not a config
    if (!text.ok()) return Fail(text.status());
    if (!o.quiet) std::fprintf(stderr, "train-tokenizer: reading %s (%zu bytes)\n", file.c_str(), text->size());
    const Status s = trainer.AddText(*text);
    if (!s.ok()) return Fail(s.WithContext(file));
  }
  auto result = trainer.Train();
  if (!o.quiet) std::fprintf(stderr, "\n");
  if (!result.ok()) return Fail(result.status());
  if (result->bytes == 0) return Fail(Status::Error("the input files hold no text"));
  const Status s = WriteTrainedTokenizer(*result, o.out);
  if (!s.ok()) return Fail(s);
  std::printf("train-tokenizer: %lld bytes, %lld words (%lld distinct), %zu merges, vocab %zu -> %s (%.1f s)\n",
              static_cast<long long>(result->bytes), static_cast<long long>(result->words),
              static_cast<long long>(result->unique_words), result->merges.size(), result->vocab.size(),
              o.out.c_str(), elapsed());
  if (static_cast<int64_t>(result->vocab.size()) < o.vocab_size)
    std::printf("train-tokenizer: note: no pair occurs %lld+ times any more, so the vocabulary is smaller than %lld\n",
                static_cast<long long>(o.min_frequency), static_cast<long long>(o.vocab_size));
  return 0;
}

}  // namespace

void RegisterTrainTokenizer(CLI::App& app, Common& common) {
  auto o = std::make_shared<TrainTokenizerOptions>();
  CLI::App* cmd = app.add_subcommand("train-tokenizer", "learn a byte-level BPE tokenizer.json from text files");
  cmd->add_option("--vocab-size", o->vocab_size, "total vocabulary, special tokens included")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--min-frequency", o->min_frequency, "stop when the best pair occurs fewer times")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("-o,--out", o->out, "output directory")->required();
  cmd->add_option("files", o->files, "text files to learn from")->required();
  cmd->add_flag("-q,--quiet", o->quiet, "no progress on stderr");
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = TrainTokenizer(*o);
  });
}

}  // namespace dsv3::cli
