// The speculative-decoding benchmark; see bench_spec.h.
#include "runtime/bench_spec.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "runtime/generate.h"

namespace dsv3 {

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Say(const SpecBenchOptions& o, const std::string& s) {
  if (o.progress) o.progress(s);
}

Status Validate(const Model& m, const SpecBenchOptions& o) {
  if (!m.has_mtp())
    return Status::Error("bench --spec mtp: the model has no MTP layer (num_nextn_predict_layers is 0)");
  if (o.draft_tokens.empty()) return Status::Error("--draft-tokens: give at least one K");
  DSV3_RETURN_IF_ERROR(DraftVocab(m.config(), o.draft_vocab).status());
  for (int k : o.draft_tokens)
    if (k < 1 || k > 16) return Status::Error("--draft-tokens: K must be in 1..16, not " + std::to_string(k));
  if (o.prompt_tokens < 1 || o.new_tokens < 2 || o.repetitions < 1)
    return Status::Error("bench --spec: -p and --reps must be >= 1 and -n >= 2");
  const int64_t k_max = *std::max_element(o.draft_tokens.begin(), o.draft_tokens.end());
  if (o.prompt_tokens + o.new_tokens + k_max + 1 > m.config().max_position_embeddings)
    return Status::Error("bench --spec: -p + -n + K exceeds max_position_embeddings " +
                         std::to_string(m.config().max_position_embeddings));
  return Status::Ok();
}

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, std::mt19937_64& rng) {
  std::vector<int32_t> t(n);
  for (auto& v : t) v = static_cast<int32_t>(2 + rng() % (vocab - 2));
  return t;
}

// Greedy continuations without and with speculation; tokens/s counts the
// tokens after the first (which the prefill's logits give) over the decode time.
Status RunContinuations(const Model& m, const SpecBenchOptions& o, const std::vector<int32_t>& prompt,
                        SpecBenchResult& r) {
  GenerateOptions gen;
  gen.max_new_tokens = o.new_tokens;
  gen.stop_at_eos = false;  // random weights may well pick an end token
  std::vector<int32_t> plain;
  for (int rep = 0; rep < o.repetitions; ++rep) {
    GenerateStats st;
    auto out = Generate(m, prompt, gen, nullptr, &st);
    if (!out.ok()) return out.status();
    plain = *out;
    r.baseline_tokens_per_s = std::max(r.baseline_tokens_per_s, (st.generated_tokens - 1) / st.decode_seconds);
    Say(o, "spec: without speculation, run " + std::to_string(rep + 1));
  }
  for (int k : o.draft_tokens) {
    SpecRun run;
    run.draft_tokens = k;
    for (int rep = 0; rep < o.repetitions; ++rep) {
      GenerateStats st;
      SpecStats ss;
      auto out = GenerateSpeculative(m, prompt, gen, SpecOptions{k, o.draft_vocab}, nullptr, &st, &ss);
      if (!out.ok()) return out.status();
      const double tps = (st.generated_tokens - 1) / st.decode_seconds;
      if (tps > run.tokens_per_s) run.tokens_per_s = tps, run.stats = ss;
      run.same_output = *out == plain;
      Say(o, "spec: K=" + std::to_string(k) + ", run " + std::to_string(rep + 1));
    }
    run.speedup = run.tokens_per_s / r.baseline_tokens_per_s;
    r.runs.push_back(run);
  }
  return Status::Ok();
}

struct CostKind {
  int64_t tokens;  // rows
  bool mtp;
  double best = 1e30, experts = 0;
};

// One forward of `kind` at context P on random tokens, rolled back after.
Status CostStep(const Model& m, CostKind& kind, int64_t P, const std::vector<float>& h_last, int64_t draft_vocab,
                KvCache& cache, Workspace& ws, Batch& batch, std::mt19937_64& rng) {
  const int64_t V = m.config().vocab_size;
  batch.Clear();
  for (int64_t i = 0; i < kind.tokens; ++i)
    batch.Add(static_cast<int32_t>(2 + rng() % (V - 2)), static_cast<int32_t>(P + i), 0, true);
  if (kind.mtp) {
    DSV3_RETURN_IF_ERROR(m.ForwardMtp(0, batch, h_last.data(), cache, ws, draft_vocab));
    cache.set_length(0, P, 1);
  } else {
    DSV3_RETURN_IF_ERROR(m.Forward(batch, cache, ws));
    cache.set_length(0, P, 0);
  }
  return Status::Ok();
}

// Costs at a fixed context: the prompt in the main and MTP caches, then
// interleaved steps of every kind (so load from other processes hits all
// kinds alike), each rolled back; mean per kind, best repetition.
Status MeasureCosts(const Model& m, const SpecBenchOptions& o, const std::vector<int32_t>& prompt,
                    SpecBenchResult& r) {
  const int64_t P = static_cast<int64_t>(prompt.size()), d = m.config().hidden_size;
  const int64_t k_max = *std::max_element(o.draft_tokens.begin(), o.draft_tokens.end());
  KvCache cache = m.NewCache(1, P + k_max + 2);
  Workspace ws;
  Batch batch;
  for (int64_t i = 0; i < P; ++i) batch.Add(prompt[i], static_cast<int32_t>(i), 0, i == P - 1);
  DSV3_RETURN_IF_ERROR(m.Forward(batch, cache, ws));
  std::vector<float> hidden(ws.hidden.begin(), ws.hidden.begin() + P * d);  // [P, d]
  std::vector<float> h_last(hidden.end() - d, hidden.end());                  // [1, d]
  batch.Clear();  // the MTP cache over the prompt: position i reads (h_i, t_{i+1})
  for (int64_t i = 0; i < P; ++i) batch.Add(i + 1 < P ? prompt[i + 1] : prompt[0], static_cast<int32_t>(i), 0, i == P - 1);
  DSV3_RETURN_IF_ERROR(m.ForwardMtp(0, batch, hidden.data(), cache, ws));
  std::vector<CostKind> kinds = {{1, false}, {1, true}};
  for (int k : o.draft_tokens) kinds.push_back({k + 1, false});
  std::mt19937_64 rng(o.seed * 104729 + 17);
  for (CostKind& kind : kinds)  // warm-up, untimed
    DSV3_RETURN_IF_ERROR(CostStep(m, kind, P, h_last, o.draft_vocab, cache, ws, batch, rng));
  for (int rep = 0; rep < o.repetitions; ++rep) {
    std::vector<double> secs(kinds.size(), 0.0);
    std::vector<int64_t> experts(kinds.size(), 0), layers(kinds.size(), 0);
    for (int64_t step = 0; step < o.new_tokens; ++step)
      for (size_t i = 0; i < kinds.size(); ++i) {
        const int64_t e0 = ws.experts_run, l0 = ws.moe_layers_run;
        const double t0 = Now();
        DSV3_RETURN_IF_ERROR(CostStep(m, kinds[i], P, h_last, o.draft_vocab, cache, ws, batch, rng));
        secs[i] += Now() - t0;
        experts[i] += ws.experts_run - e0, layers[i] += ws.moe_layers_run - l0;
      }
    for (size_t i = 0; i < kinds.size(); ++i) {
      const double mean = secs[i] / static_cast<double>(o.new_tokens);
      if (mean < kinds[i].best)
        kinds[i].best = mean, kinds[i].experts = layers[i] ? static_cast<double>(experts[i]) / layers[i] : 0.0;
    }
    Say(o, "spec: cost steps, run " + std::to_string(rep + 1));
  }
  auto to_cost = [&](const CostKind& k) {
    return SpecCost{k.tokens, k.best, k.best / kinds[0].best, k.experts};
  };
  r.decode = to_cost(kinds[0]);
  r.draft = to_cost(kinds[1]);
  for (size_t i = 2; i < kinds.size(); ++i) r.verify.push_back(to_cost(kinds[i]));
  return Status::Ok();
}

}  // namespace

double TokensPerRound(const SpecStats& s) {
  return s.rounds ? 1.0 + static_cast<double>(s.accepted) / static_cast<double>(s.rounds) : 0.0;
}

Expected<SpecBenchResult> RunSpecBenchmark(const Model& m, const SpecBenchOptions& o) {
  DSV3_RETURN_IF_ERROR(Validate(m, o));
  std::mt19937_64 rng(o.seed);
  const std::vector<int32_t> prompt = RandomTokens(o.prompt_tokens, m.config().vocab_size, rng);
  SpecBenchResult r;
  r.prompt_tokens = o.prompt_tokens, r.new_tokens = o.new_tokens;
  DSV3_RETURN_IF_ERROR(RunContinuations(m, o, prompt, r));
  DSV3_RETURN_IF_ERROR(MeasureCosts(m, o, prompt, r));
  for (size_t i = 0; i < r.runs.size(); ++i) {
    SpecRun& run = r.runs[i];
    const double round_cost = run.draft_tokens * r.draft.relative + r.verify[i].relative;
    run.predicted_speedup = TokensPerRound(run.stats) / round_cost;
  }
  return r;
}

std::string SpecBenchJson(const SpecBenchResult& r) {
  nlohmann::ordered_json j;
  j["prompt_tokens"] = r.prompt_tokens;
  j["new_tokens"] = r.new_tokens;
  j["baseline_tokens_per_s"] = r.baseline_tokens_per_s;
  nlohmann::ordered_json runs = nlohmann::ordered_json::array();
  for (const SpecRun& run : r.runs) {
    const SpecStats& s = run.stats;
    std::vector<double> per_position;
    for (size_t p = 0; p < s.proposed_at.size(); ++p)
      per_position.push_back(s.proposed_at[p] ? static_cast<double>(s.accepted_at[p]) / s.proposed_at[p] : 0.0);
    runs.push_back({{"draft_tokens", run.draft_tokens},
                    {"tokens_per_s", run.tokens_per_s},
                    {"speedup", run.speedup},
                    {"predicted_speedup", run.predicted_speedup},
                    {"same_output", run.same_output},
                    {"rounds", s.rounds},
                    {"drafts_proposed", s.drafted},
                    {"drafts_accepted", s.accepted},
                    {"acceptance", s.acceptance()},
                    {"acceptance_per_position", per_position},
                    {"tokens_per_forward", TokensPerRound(s)}});
  }
  j["runs"] = runs;
  auto cost = [](const SpecCost& c) {
    return nlohmann::ordered_json{{"tokens", c.tokens},
                                  {"seconds", c.seconds},
                                  {"relative", c.relative},
                                  {"experts_per_layer", c.experts_per_layer}};
  };
  j["decode_step"] = cost(r.decode);
  j["draft_step"] = cost(r.draft);
  nlohmann::ordered_json verify = nlohmann::ordered_json::array();
  for (const SpecCost& c : r.verify) verify.push_back(cost(c));
  j["verify"] = verify;
  return nlohmann::ordered_json{{"spec", j}}.dump(2);
}

}  // namespace dsv3
