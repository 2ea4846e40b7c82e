// `dsv3 logits`: logits for every position of a batch of token sequences,
// for inspection and for comparing with other implementations. Input tensor
// `tokens` I32 [B, T]; output `logits` F32 [B, T, V] and, with --mtp,
// `mtp_logits` F32 [B, T-1, V] (the MTP module's prediction of token i+2).
// --prefill N runs the first N positions as one prefill and the rest as
// one-token decode steps through the cache; all B sequences share each call.
#include <cstdio>
#include <cstring>

#include "apps/dsv3/commands.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

namespace dsv3::cli {

namespace {

struct LogitsOptions {
  std::string model_dir, input, output;
  int64_t prefill = -1;  // -1: all positions in one prefill
  bool mtp = false;
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

// Runs positions [begin, end) of every sequence in one forward per call
// (prefill) or one call per position (decode), copying rows into `out`
// [B, T', V] and hidden states into `hidden` [B, T, d] when given.
Status RunSpan(const Model& m, const Tokens& tk, int64_t begin, int64_t end, int depth, const float* hidden_in,
               KvCache& cache, Workspace& ws, float* out, int64_t out_len, float* hidden) {
  const int64_t V = m.config().vocab_size, d = m.config().hidden_size;
  Batch batch;
  std::vector<float> in_rows;
  for (int64_t b = 0; b < tk.batch; ++b)
    for (int64_t p = begin; p < end; ++p) {
      // MTP: position p reads token p+1 and the main hidden state at p.
      batch.Add(tk.ids[b * tk.length + p + (depth >= 0 ? 1 : 0)], static_cast<int32_t>(p), static_cast<int32_t>(b), true);
      if (depth >= 0) in_rows.insert(in_rows.end(), hidden_in + (b * tk.length + p) * d, hidden_in + (b * tk.length + p + 1) * d);
    }
  DSV3_RETURN_IF_ERROR(depth >= 0 ? m.ForwardMtp(depth, batch, in_rows.data(), cache, ws) : m.Forward(batch, cache, ws));
  int64_t row = 0;
  for (int64_t b = 0; b < tk.batch; ++b)
    for (int64_t p = begin; p < end; ++p, ++row) {
      std::memcpy(out + (b * out_len + p) * V, ws.logits.data() + row * V, V * sizeof(float));
      if (hidden) std::memcpy(hidden + (b * tk.length + p) * d, ws.hidden.data() + row * d, d * sizeof(float));
    }
  return Status::Ok();
}

// Prefill [0, prefill) then decode the rest one position at a time.
Status RunAll(const Model& m, const Tokens& tk, int64_t len, int64_t prefill, int depth, const float* hidden_in,
              KvCache& cache, float* out, float* hidden) {
  Workspace ws;
  prefill = std::min(prefill, len);
  if (prefill > 0) DSV3_RETURN_IF_ERROR(RunSpan(m, tk, 0, prefill, depth, hidden_in, cache, ws, out, len, hidden));
  for (int64_t p = prefill; p < len; ++p)
    DSV3_RETURN_IF_ERROR(RunSpan(m, tk, p, p + 1, depth, hidden_in, cache, ws, out, len, hidden));
  return Status::Ok();
}

// Under mpirun every rank runs the same forwards (experts split over the
// ranks), failures are agreed by all ranks, and rank 0 writes the output.
int Logits(const LogitsOptions& o, Common& common) {
  auto tk = ReadTokens(o.input);
  if (Status st = common.Agree(tk.status()); !st.ok()) return Fail(st);
  auto model = LoadOnRanks(common, o.model_dir, LoadOptions{});
  if (!model.ok()) return Fail(model.status());
  const Model& m = **model;
  const Status no_mtp = Status::Error("--mtp: " + o.model_dir + " has no MTP layer (num_nextn_predict_layers is 0)");
  if (o.mtp && !m.has_mtp()) return Fail(common.Agree(no_mtp));
  const int64_t B = tk->batch, T = tk->length, V = m.config().vocab_size, d = m.config().hidden_size;
  const int64_t prefill = o.prefill < 0 ? T : o.prefill;
  KvCache cache = m.NewCache(B, T);
  std::vector<float> logits(B * T * V), hidden(B * T * d), mtp_logits;
  Status st = common.Agree(RunAll(m, *tk, T, prefill, -1, nullptr, cache, logits.data(), hidden.data()));
  if (!st.ok()) return Fail(st.WithContext(o.input));
  std::vector<TensorToWrite> out = {{{"logits", DType::kF32, {B, T, V}}, logits.data()}};
  if (o.mtp && T > 1) {
    mtp_logits.resize(B * (T - 1) * V);
    st = common.Agree(RunAll(m, *tk, T - 1, prefill, 0, hidden.data(), cache, mtp_logits.data(), nullptr));
    if (!st.ok()) return Fail(st.WithContext(o.input));
    out.push_back({{"mtp_logits", DType::kF32, {B, T - 1, V}}, mtp_logits.data()});
  }
  if (common.rank() > 0) return 0;
  st = WriteSafetensors(o.output, out, {{"format", "pt"}, {"producer", "dsv3 logits"}});
  if (!st.ok()) return Fail(st);
  std::fprintf(stderr, "wrote %s: logits [%lld, %lld, %lld]%s\n", o.output.c_str(), (long long)B, (long long)T,
               (long long)V, mtp_logits.empty() ? "" : " and mtp_logits");
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
  cmd->add_flag("--mtp", o->mtp, "also write mtp_logits from the MTP layer");
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Logits(*o, common);
  });
}

}  // namespace dsv3::cli
