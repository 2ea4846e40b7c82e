// `dsv3 logits`: logits for every position of a batch of token sequences,
// for inspection and for comparing with other implementations. Input tensor
// `tokens` I32 [B, T]; output `logits` F32 [B, T, V] and, with --mtp,
// `mtp_logits` F32 [B, T-1, V] (the MTP module's prediction of token i+2).
// --prefill N runs the first N positions as a prefill (in chunks of
// --prefill-chunk positions) and the rest as one-token decode steps through
// the cache; all B sequences share each call. Rows go straight to the output
// file, so memory holds the weights, the cache and one chunk's activations
// (plus the hidden states [B, T, d] with --mtp), whatever the prompt length.
#include <cstdio>
#include <cstring>
#include <optional>

#include "apps/dsv3/commands.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model.h"
#include "runtime/data_parallel.h"

namespace dsv3::cli {

namespace {

struct LogitsOptions {
  std::string model_dir, input, output;
  int64_t prefill = -1;  // -1: all positions prefilled
  int64_t prefill_chunk = 512;  // positions per prefill forward (bounds activation memory)
  bool mtp = false;
  std::string kv_cache = "f32";
  std::string attention = "auto";  // under mpirun: auto | replicated | data
};

struct Tokens {
  int64_t batch = 0, length = 0;
  std::vector<int32_t> ids;  // [B, T]
};

Expected<Tokens> ReadTokens(const std::string& path) {
  DSV3_ASSIGN_OR_RETURN(auto file, SafetensorsFile::Open(path));
  const TensorInfo* t = file->Find("tokens");
  if (!t) return Status::Error(path + ": no tensor named 'tokens'");
  if (t->dtype != DType::kI32 || t->shape.size() != 2 || t->shape[0] < 1 || t->shape[1] < 1)
    return Status::Error(path + ": tensor 'tokens' must be I32 [B, T] with B, T >= 1 (got " +
                         std::string(DTypeName(t->dtype)) + " " + t->ShapeString() + ")");
  Tokens tk;
  tk.batch = t->shape[0], tk.length = t->shape[1];
  tk.ids.resize(tk.batch * tk.length);
  std::memcpy(tk.ids.data(), t->data, t->nbytes);
  return tk;
}

// Where finished rows of one output tensor [B, T', V] go: rank 0 writes each
// into the output file at its place as soon as it exists, so no [B, T, V]
// buffer is held (a 128K-token prompt's logits are a file, not memory);
// the other ranks drop them.
struct RowSink {
  SafetensorsWriter* writer = nullptr;  // null on ranks > 0
  uint64_t base = 0;                    // the tensor's first byte in the data section
  int64_t len = 0;                      // T'
};

// Buffers of one pass, reused by every call, and what runs its forwards
// (the model, or data-parallel attention: sequence b on rank b % ranks).
struct Pass {
  Batch batch;
  std::vector<float> in_rows;  // [tokens, d] MTP input hidden states
  Workspace ws;
  StepRunner* runner = nullptr;
};

// Runs positions [begin, end) of every sequence in one forward, sending the
// rows to `sink` and hidden states into `hidden` [B, T, d] when given.
Status RunSpan(const Model& m, const Tokens& tk, int64_t begin, int64_t end, int depth, const float* hidden_in,
               KvCache& cache, Pass& pass, const RowSink& sink, float* hidden) {
  const int64_t V = m.config().vocab_size, d = m.config().hidden_size;
  pass.batch.Clear(), pass.in_rows.clear();
  for (int64_t b = 0; b < tk.batch; ++b)
    for (int64_t p = begin; p < end; ++p) {
      // MTP: position p reads token p+1 and the main hidden state at p.
      pass.batch.Add(tk.ids[b * tk.length + p + (depth >= 0 ? 1 : 0)], static_cast<int32_t>(p),
                     static_cast<int32_t>(b), true);
      if (depth >= 0)
        pass.in_rows.insert(pass.in_rows.end(), hidden_in + (b * tk.length + p) * d,
                            hidden_in + (b * tk.length + p + 1) * d);
    }
  DSV3_RETURN_IF_ERROR(depth >= 0 ? pass.runner->ForwardMtp(m, depth, pass.batch, pass.in_rows.data(), cache, pass.ws, 0)
                                  : pass.runner->Forward(m, pass.batch, cache, pass.ws));
  int64_t row = 0;
  for (int64_t b = 0; b < tk.batch; ++b)
    for (int64_t p = begin; p < end; ++p, ++row) {
      const float* logits = pass.ws.logits.data() + row * V;
      if (sink.writer)
        DSV3_RETURN_IF_ERROR(sink.writer->WriteAt(sink.base + (b * sink.len + p) * V * sizeof(float), logits,
                                                  V * sizeof(float)));
      if (hidden) std::memcpy(hidden + (b * tk.length + p) * d, pass.ws.hidden.data() + row * d, d * sizeof(float));
    }
  return Status::Ok();
}

// Prefill [0, prefill) in chunks of `chunk` positions (every sequence in each
// call), then decode the rest one position at a time.
Status RunAll(const Model& m, const Tokens& tk, int64_t len, int64_t prefill, int64_t chunk, int depth,
              const float* hidden_in, KvCache& cache, const RowSink& sink, float* hidden, StepRunner& runner) {
  Pass pass;
  pass.runner = &runner;
  prefill = std::min(prefill, len);
  for (int64_t p0 = 0; p0 < prefill; p0 += chunk)
    DSV3_RETURN_IF_ERROR(
        RunSpan(m, tk, p0, std::min(prefill, p0 + chunk), depth, hidden_in, cache, pass, sink, hidden));
  for (int64_t p = prefill; p < len; ++p)
    DSV3_RETURN_IF_ERROR(RunSpan(m, tk, p, p + 1, depth, hidden_in, cache, pass, sink, hidden));
  return Status::Ok();
}

// Under mpirun every rank runs the same forwards (experts split over the
// ranks), failures are agreed by all ranks, and rank 0 writes the output.
int Logits(const LogitsOptions& o, Common& common) {
  auto tk = ReadTokens(o.input);
  if (Status st = common.Agree(tk.status()); !st.ok()) return Fail(st);
  LoadOptions lo;
  lo.kv_cache = o.kv_cache == "fp8" ? KvCacheType::kF8E4M3 : KvCacheType::kF32;
  auto model = LoadOnRanks(common, o.model_dir, lo);
  if (!model.ok()) return Fail(model.status());
  const Model& m = **model;
  const Status no_mtp = Status::Error("--mtp: " + o.model_dir + " has no MTP layer (num_nextn_predict_layers is 0)");
  if (o.mtp && !m.has_mtp()) return Fail(common.Agree(no_mtp));
  const int64_t B = tk->batch, T = tk->length, V = m.config().vocab_size, d = m.config().hidden_size;
  const int64_t max_pos = m.config().max_position_embeddings;
  const Status too_long = Status::Error(o.input + ": " + std::to_string(T) + " positions per sequence, more than " +
                                        o.model_dir + "'s max_position_embeddings " + std::to_string(max_pos) +
                                        " (give a shorter 'tokens' tensor)");
  if (T > max_pos) return Fail(common.Agree(too_long));
  const int64_t prefill = o.prefill < 0 ? T : o.prefill;
  const bool mtp = o.mtp && T > 1;
  std::vector<TensorSpec> specs = {{"logits", DType::kF32, {B, T, V}}};
  if (mtp) specs.push_back({"mtp_logits", DType::kF32, {B, T - 1, V}});
  std::unique_ptr<SafetensorsWriter> writer;
  if (common.rank() == 0) {
    auto w = SafetensorsWriter::Create(o.output, specs, {{"format", "pt"}, {"producer", "dsv3 logits"}});
    if (w.ok()) writer = std::move(*w);
    if (Status st = common.Agree(w.status()); !st.ok()) return Fail(st);
  } else if (Status st = common.Agree(Status::Ok()); !st.ok()) {
    return Fail(st);
  }
  KvCache cache = m.NewCache(B, T);
  // Each rank keeps the hidden rows of its own sequences: the MTP pass needs no more.
  std::optional<DataParallelForward> dp;
  // auto: one sequence runs on rank 0 alone (faster, and the same bits);
  // several are replicated (bit-identical to one process; `data` spreads
  // them, within kernel rounding).
  const bool data = o.attention == "data" || (o.attention == "auto" && B == 1);
  if (common.distributed() && data)
    dp.emplace(*common.comm, DataParallelOptions{.hidden = mtp, .micro_batches = common.micro_batches});
  StepRunner direct;
  StepRunner& runner = dp ? *dp : direct;
  std::vector<float> hidden(mtp ? B * T * d : 0);  // [B, T, d] the MTP pass's input
  const RowSink main_rows{writer.get(), 0, T};
  Status st = common.Agree(RunAll(m, *tk, T, prefill, o.prefill_chunk, -1, nullptr, cache, main_rows,
                                  mtp ? hidden.data() : nullptr, runner));
  if (!st.ok()) return Fail(st.WithContext(o.input));
  if (mtp) {
    const RowSink mtp_rows{writer.get(), specs[0].nbytes(), T - 1};
    st = common.Agree(RunAll(m, *tk, T - 1, prefill, o.prefill_chunk, 0, hidden.data(), cache, mtp_rows, nullptr,
                             runner));
    if (!st.ok()) return Fail(st.WithContext(o.input));
  }
  if (common.rank() > 0) return 0;
  if (st = writer->Finish(); !st.ok()) return Fail(st);
  std::fprintf(stderr, "wrote %s: logits [%lld, %lld, %lld]%s\n", o.output.c_str(), (long long)B, (long long)T,
               (long long)V, mtp ? " and mtp_logits" : "");
  return 0;
}

}  // namespace

void RegisterLogits(CLI::App& app, Common& common) {
  auto o = std::make_shared<LogitsOptions>();
  CLI::App* cmd = app.add_subcommand("logits", "dump logits for every position of token sequences");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory or .gguf file")->required();
  cmd->add_option("--input", o->input, "safetensors file with tensor 'tokens' I32 [B, T]")->required();
  cmd->add_option("--output", o->output, "safetensors file to write")->required();
  cmd->add_option("--prefill", o->prefill, "prefill the first N positions, decode the rest (default: all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefill-chunk", o->prefill_chunk,
                  "prefill at most N positions of every sequence per forward (activation memory is bounded by "
                  "this, not by the prompt length)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--kv-cache", o->kv_cache, "latent KV cache: f32 or fp8 (e4m3 with per-row scales)")
      ->check(CLI::IsMember({"f32", "fp8"}));
  cmd->add_flag("--mtp", o->mtp, "also write mtp_logits from the MTP layer");
  cmd->add_option("--attention", o->attention, "under mpirun: replicated (every rank runs every sequence; logits "
                 "bit-identical to one process), data (sequence b's attention on rank b % ranks; within kernel "
                 "rounding) or auto (data for one sequence, which is then bit-identical, else replicated)")
      ->check(CLI::IsMember({"auto", "replicated", "data"}))
      ->capture_default_str();
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Logits(*o, common);
  });
}

}  // namespace dsv3::cli
