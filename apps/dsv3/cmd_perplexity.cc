// `dsv3 perplexity --file TEXT`: how well a model predicts a text file. The
// file is encoded with the model's tokenizer (BOS per tokenizer_config.json)
// and scored in windows of --context tokens that overlap by one token: window
// k covers tokens [k (C-1), k (C-1) + C), its first token is context only, so
// every token after the first is predicted exactly once, from 0..C-1 tokens
// of context. Perplexity is exp(mean negative log-likelihood per predicted
// token); bits per byte divide the total in bits by the file's UTF-8 bytes,
// which makes models with different tokenizers comparable. `--tokens FILE`
// scores ids as stored (little-endian uint32, e.g. a `dsv3 prepare-data`
// shard) instead, so n-gram baselines can be computed on the very same ids;
// its bytes are those of the decoded ids. `--save-logprobs FILE` keeps the
// log-probabilities of every predicted position (e.g. of a BF16 model), and
// `--kl-base FILE` scores another model (e.g. a quantized file of it)
// against them: mean KL divergence and how often the top token agrees,
// llama.cpp's quantization-quality figures.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/text_output.h"
#include "core/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model.h"
#include "runtime/logprobs.h"

namespace dsv3::cli {

namespace {

struct PerplexityOptions {
  std::string model_dir = DefaultModelDir(), file, tokens, tokenizer_dir, save_logprobs, kl_base;
  int64_t context = 0;  // 0: the model's pre-YaRN context, at most 4096
  bool quiet = false;
};

// The whole file; an empty one is an error (nothing to score).
Expected<std::string> ReadNonEmpty(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(std::string bytes, ReadTextFile(path, kMaxDataFileBytes));
  if (bytes.empty()) return Status::Error(path + ": the file is empty");
  return bytes;
}

// Little-endian uint32 ids (x86 and ARM hosts are little-endian).
Expected<std::vector<int32_t>> ReadIds(const std::string& path, const Tokenizer& tok) {
  DSV3_ASSIGN_OR_RETURN(std::string bytes, ReadNonEmpty(path));
  if (bytes.size() % 4 != 0) return Status::Error(path + ": size is not a multiple of 4 bytes (uint32 ids)");
  std::vector<int32_t> ids(bytes.size() / 4);
  std::memcpy(ids.data(), bytes.data(), bytes.size());
  for (size_t i = 0; i < ids.size(); ++i)
    if (!tok.IsValidId(ids[i]))
      return Status::Error(path + ": id " + std::to_string(static_cast<uint32_t>(ids[i])) + " at index " +
                           std::to_string(i) + " is outside the tokenizer's vocabulary");
  return ids;
}

// The ids to score and the UTF-8 bytes they stand for.
struct Input {
  std::vector<int32_t> ids;
  int64_t bytes = 0;
};

Expected<Input> ReadInput(const PerplexityOptions& o, const Tokenizer& tok) {
  Input in;
  if (!o.tokens.empty()) {
    DSV3_ASSIGN_OR_RETURN(in.ids, ReadIds(o.tokens, tok));
    DSV3_ASSIGN_OR_RETURN(std::string text, tok.Decode(in.ids));
    in.bytes = static_cast<int64_t>(text.size());
    return in;
  }
  DSV3_ASSIGN_OR_RETURN(std::string text, ReadNonEmpty(o.file));
  DSV3_RETURN_IF_ERROR(EncodeForModel(tok, text, o.file, in.ids));
  in.bytes = static_cast<int64_t>(text.size());
  return in;
}

int64_t DefaultContext(const Config& c) {
  const int64_t trained = c.rope_scaling ? c.rope_scaling->original_max_position_embeddings : c.max_position_embeddings;
  return std::min<int64_t>({trained, c.max_position_embeddings, 4096});
}

struct Score {
  double nll = 0.0;  // nats, summed
  int64_t predicted = 0;
};

// The log-probabilities of every predicted position: written for a base
// model (--save-logprobs: tensors `ids` I32 [n] and `logprobs` F32 [n-1, V],
// the context in the metadata), or read back to compare another model with
// (--kl-base), which must score the same ids in the same windows.
class Distributions {
 public:
  static Expected<std::unique_ptr<Distributions>> Save(const std::string& path, const std::vector<int32_t>& ids,
                                                       int64_t context, int64_t vocab) {
    const int64_t n = static_cast<int64_t>(ids.size());
    std::unique_ptr<Distributions> d(new Distributions(vocab));
    DSV3_ASSIGN_OR_RETURN(d->writer_, SafetensorsWriter::Create(
                                          path, {{"ids", DType::kI32, {n}}, {"logprobs", DType::kF32, {n - 1, vocab}}},
                                          {{"context", std::to_string(context)}, {"producer", "dsv3 perplexity"}}));
    DSV3_RETURN_IF_ERROR(d->writer_->Write(ids.data(), ids.size() * sizeof(int32_t)));
    return d;
  }
  static Expected<std::unique_ptr<Distributions>> Base(const std::string& path, const std::vector<int32_t>& ids,
                                                       int64_t context, int64_t vocab) {
    std::unique_ptr<Distributions> d(new Distributions(vocab));
    DSV3_ASSIGN_OR_RETURN(d->base_, SafetensorsFile::Open(path));
    const TensorInfo* t = d->base_->Find("ids");
    const TensorInfo* lp = d->base_->Find("logprobs");
    const int64_t n = static_cast<int64_t>(ids.size());
    if (!t || !lp || t->dtype != DType::kI32 || lp->dtype != DType::kF32 || lp->shape.size() != 2)
      return Status::Error(path + ": not a --save-logprobs file (tensors 'ids' I32 and 'logprobs' F32 [n-1, V])");
    if (t->shape != std::vector<int64_t>{n} || std::memcmp(t->data, ids.data(), n * sizeof(int32_t)) != 0)
      return Status::Error(path + ": its ids are not this input's (" + std::to_string(t->shape[0]) + " vs " +
                           std::to_string(n) + " tokens): save and compare the same text with the same tokenizer");
    if (lp->shape != std::vector<int64_t>{n - 1, vocab})
      return Status::Error(path + ": logprobs " + lp->ShapeString() + ", this model needs [" + std::to_string(n - 1) +
                           ", " + std::to_string(vocab) + "] (a different vocabulary?)");
    const auto& meta = d->base_->metadata();
    const std::string saved = meta.count("context") ? meta.at("context") : "?";
    if (saved != std::to_string(context))
      return Status::Error(path + ": saved with --context " + saved + ", this run uses " + std::to_string(context) +
                           " (the windows must match)");
    d->base_rows_ = reinterpret_cast<const float*>(lp->data);
    return d;
  }

  // Row `logits` [V] predicts `next`, the next predicted position in order.
  Status Add(const float* logits, int32_t next) {
    LogSoftmax(logits, vocab_, row_.data());
    if (writer_) return writer_->Write(row_.data(), row_.size() * sizeof(float));
    const float* base = base_rows_ + rows_ * vocab_;
    kl_sum_ += KlDivergence(base, row_.data(), vocab_);
    top_same_ += std::max_element(base, base + vocab_) - base == std::max_element(row_.begin(), row_.end()) - row_.begin();
    base_nll_ -= base[next];
    ++rows_;
    return Status::Ok();
  }
  Status Finish() { return writer_ ? writer_->Finish() : Status::Ok(); }
  // "kl_mean=... top1_agree=... base_perplexity=..." after --kl-base.
  std::string Summary() const {
    char buf[160];
    const double n = static_cast<double>(std::max<int64_t>(rows_, 1));
    std::snprintf(buf, sizeof buf, " kl_mean=%.6f top1_agree=%.4f base_perplexity=%.4f", kl_sum_ / n, top_same_ / n,
                  std::exp(base_nll_ / n));
    return buf;
  }

 private:
  explicit Distributions(int64_t vocab) : vocab_(vocab), row_(vocab) {}
  int64_t vocab_;
  std::vector<float> row_;  // [V] this position's log-probabilities
  std::unique_ptr<SafetensorsWriter> writer_;
  std::unique_ptr<SafetensorsFile> base_;
  const float* base_rows_ = nullptr;  // [n-1, V]
  int64_t rows_ = 0, top_same_ = 0;
  double kl_sum_ = 0.0, base_nll_ = 0.0;
};

// Scores ids[begin, end) with the model: predicts ids[begin+1 .. end).
Status ScoreWindow(const Model& m, const std::vector<int32_t>& ids, int64_t begin, int64_t end, KvCache& cache,
                   Workspace& ws, Batch& batch, Score& score, Distributions* dist) {
  batch.Clear();
  cache.Clear(0);
  for (int64_t i = begin; i < end; ++i)
    batch.Add(ids[i], static_cast<int32_t>(i - begin), 0, i + 1 < end);
  DSV3_RETURN_IF_ERROR(m.Forward(batch, cache, ws));
  const int64_t vocab = m.config().vocab_size;
  for (int64_t i = begin; i + 1 < end; ++i) {
    const float* row = ws.logits.data() + (i - begin) * vocab;
    score.nll -= TokenLogprobs(row, vocab, ids[i + 1], 0, nullptr);
    ++score.predicted;
    if (dist) DSV3_RETURN_IF_ERROR(dist->Add(row, ids[i + 1]));
  }
  return Status::Ok();
}

// The tokens to score and the window length, checked.
Status PrepareInput(const PerplexityOptions& o, const Model& m, Input& input, int64_t& context) {
  DSV3_ASSIGN_OR_RETURN(auto tok, LoadTokenizerFor(m, o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir));
  DSV3_ASSIGN_OR_RETURN(input, ReadInput(o, *tok));
  const std::string& source = o.tokens.empty() ? o.file : o.tokens;
  if (input.ids.size() < 2) return Status::Error(source + ": fewer than two tokens; nothing to predict");
  context = o.context > 0 ? o.context : DefaultContext(m.config());
  if (context < 2 || context > m.config().max_position_embeddings)
    return Status::Error("--context must be in [2, max_position_embeddings = " +
                         std::to_string(m.config().max_position_embeddings) + "], got " + std::to_string(context));
  return Status::Ok();
}

// Under mpirun every rank scores every window (experts split over the
// ranks); failures are agreed by all ranks and rank 0 prints.
int Perplexity(const PerplexityOptions& o, Common& common) {
  const bool quiet = o.quiet || common.rank() > 0;
  auto model = LoadOnRanks(common, o.model_dir, LoadOptions{.verbose = !quiet});
  if (!model.ok()) return Fail(model.status());
  const Model& m = **model;
  Input in;
  int64_t context = 0;
  if (Status st = common.Agree(PrepareInput(o, m, in, context)); !st.ok()) return Fail(st);
  const Input* input = &in;
  const std::vector<int32_t>& ids = in.ids;
  const int64_t vocab = m.config().vocab_size;
  std::unique_ptr<Distributions> dist;  // rank 0's --save-logprobs / --kl-base
  Status dist_st;
  if (common.rank() == 0 && (!o.save_logprobs.empty() || !o.kl_base.empty())) {
    auto d = o.kl_base.empty() ? Distributions::Save(o.save_logprobs, ids, context, vocab)
                               : Distributions::Base(o.kl_base, ids, context, vocab);
    if (d.ok()) dist = std::move(*d);
    dist_st = d.status().WithContext(o.kl_base.empty() ? "--save-logprobs" : "--kl-base");
  }
  if (Status st = common.Agree(dist_st); !st.ok()) return Fail(st);
  KvCache cache = m.NewCache(1, context);
  Workspace ws;
  Batch batch;
  Score score;
  const int64_t n = static_cast<int64_t>(ids.size()), step = context - 1;
  const int64_t windows = (n - 2) / step + 1;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < windows; ++k) {
    const int64_t begin = k * step, end = std::min(begin + context, n);
    if (Status s = ScoreWindow(m, ids, begin, end, cache, ws, batch, score, dist.get()); !s.ok())
      return Fail(common.Agree(s));
    if (!quiet && (k + 1 == windows || (k + 1) % 16 == 0))
      std::fprintf(stderr, "\rscored %lld/%lld windows (%lld tokens)", (long long)(k + 1), (long long)windows,
                   (long long)score.predicted);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!quiet)
    std::fprintf(stderr, "\ncontext %lld tokens, %.1f tokens/s\n", (long long)context, score.predicted / std::max(seconds, 1e-9));
  const double ppl = std::exp(score.nll / score.predicted);
  const double bpb = score.nll / std::log(2.0) / static_cast<double>(std::max<int64_t>(input->bytes, 1));
  if (dist)
    if (Status st = dist->Finish(); !st.ok()) return Fail(st);
  std::printf("perplexity=%.4f bits_per_byte=%.4f tokens=%lld%s\n", ppl, bpb, (long long)score.predicted,
              dist && !o.kl_base.empty() ? dist->Summary().c_str() : "");
  return 0;
}

}  // namespace

void RegisterPerplexity(CLI::App& app, Common& common) {
  auto o = std::make_shared<PerplexityOptions>();
  CLI::App* cmd = app.add_subcommand("perplexity", "perplexity and bits per byte of a text file");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory or .gguf file (default: the bundled model)")
      ->capture_default_str();
  auto* file = cmd->add_option("-f,--file", o->file, "text file (UTF-8)");
  auto* tokens = cmd->add_option("--tokens", o->tokens, "token ids instead: little-endian uint32 (a prepare-data shard)");
  file->excludes(tokens);
  cmd->add_option("--tokenizer", o->tokenizer_dir, "tokenizer directory (default: the model's directory)");
  cmd->add_option("-c,--context", o->context,
                  "tokens per window (default: the model's pre-YaRN context, at most 4096)");
  auto* save = cmd->add_option("--save-logprobs", o->save_logprobs,
                               "write every predicted position's log-probabilities to FILE (a base model, e.g. BF16; "
                               "4 x vocab bytes per token)");
  auto* base = cmd->add_option("--kl-base", o->kl_base,
                               "compare with a --save-logprobs FILE of the same input: mean KL divergence, top-token "
                               "agreement, the base's perplexity");
  save->excludes(base);
  cmd->add_flag("-q,--quiet", o->quiet, "no loading or progress messages");
  cmd->callback([o, &common] {
    if (o->file.empty() && o->tokens.empty()) {
      common.exit_code = Fail(Status::Error("give --file TEXT or --tokens IDS.bin"));
      return;
    }
    common.Apply();
    common.exit_code = Perplexity(*o, common);
  });
}

}  // namespace dsv3::cli
