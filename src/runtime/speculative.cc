// MTP speculative decoding; see speculative.h.
#include "runtime/speculative.h"

#include <algorithm>
#include <chrono>
#include <cstring>

namespace dsv3 {

namespace {
double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
// AcceptDrafts without the rollback: the drafts it accepts stay in the sampler's history.
int64_t AcceptPrefix(Sampler& sampler, const float* logits, std::span<const int32_t> drafts, const float* q,
                     int64_t V, float* probs, float* residual, int32_t* next) {
  const int64_t K = static_cast<int64_t>(drafts.size());
  const bool greedy = sampler.options().greedy();
  for (int64_t j = 0; j < K; ++j) {
    const float* row = logits + j * V;
    const int32_t draft = drafts[j];
    if (greedy) {
      const int32_t target = sampler.Greedy(row, V);
      if (draft != target) return *next = target, j;
      sampler.Accept(draft);
      continue;
    }
    sampler.Distribution(row, V, probs);
    const float* qj = q + j * V;
    const double ratio = qj[draft] > 0 ? probs[draft] / static_cast<double>(qj[draft]) : 0.0;
    if (sampler.rng().Uniform() < ratio) {
      sampler.Accept(draft);
      continue;
    }
    // Rejected: sample from the normalised residual max(0, p - q).
    double mass = 0;
    for (int64_t v = 0; v < V; ++v) mass += (residual[v] = std::max(0.0f, probs[v] - qj[v]));
    if (mass <= 0) {  // p == q up to rounding: the residual is empty, p itself is exact
      *next = sampler.SampleFrom(probs, V);
      return j;
    }
    for (int64_t v = 0; v < V; ++v) residual[v] = static_cast<float>(residual[v] / mass);
    *next = sampler.SampleFrom(residual, V);
    return j;
  }
  *next = sampler.Sample(logits + K * V, V);  // every draft accepted: a bonus token
  return K;
}

}  // namespace

Expected<int64_t> DraftVocab(const Config& config, int64_t draft_vocab) {
  if (draft_vocab < 0 || draft_vocab > config.vocab_size)
    return Status::Error("--draft-vocab " + std::to_string(draft_vocab) + " is outside [0, vocab_size " +
                         std::to_string(config.vocab_size) + "] (0: the whole vocabulary)");
  return draft_vocab == 0 ? config.vocab_size : draft_vocab;
}

SpeculativeDecoder::SpeculativeDecoder(const Model& model, const GenerateOptions& gen, const SpecOptions& spec)
    : model_(model), gen_(gen), spec_(spec), cache_(model.config(), 0, 0) {}

Status SpeculativeDecoder::Prefill(const std::vector<std::vector<int32_t>>& prompts) {
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size;
  const int64_t chunk = std::max<int64_t>(gen_.prefill_chunk, 1);
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, p.size());
  std::vector<const float*> last_logits(seqs_.size());
  std::vector<float> logits(seqs_.size() * V);
  for (int64_t start = 0; start < longest; start += chunk) {
    batch_.Clear();
    std::vector<std::pair<int64_t, int64_t>> rows;  // (sequence, count) in batch order
    for (size_t s = 0; s < seqs_.size(); ++s) {
      const int64_t P = prompts[s].size(), end = std::min(P, start + chunk);
      for (int64_t p = start; p < end; ++p) batch_.Add(prompts[s][p], p, seqs_[s].slot, p == P - 1);
      if (end > start) rows.emplace_back(s, end - start);
    }
    DSV3_RETURN_IF_ERROR(runner().Forward(model_, batch_, cache_, ws_));
    int64_t row = 0, logit_row = 0;
    for (auto [s, count] : rows) {
      Seq& q = seqs_[s];
      q.hidden.insert(q.hidden.end(), ws_.hidden.begin() + row * d, ws_.hidden.begin() + (row + count) * d);
      row += count;
      q.n += count;
      if (q.n == static_cast<int64_t>(prompts[s].size()))
        std::memcpy(&logits[s * V], ws_.logits.data() + logit_row++ * V, V * sizeof(float));
    }
  }
  for (size_t s = 0; s < seqs_.size(); ++s) seqs_[s].pending = seqs_[s].sampler.Sample(&logits[s * V], V);
  return Status::Ok();
}

// Catches the MTP layer up on new main hidden states and proposes K drafts.
Status SpeculativeDecoder::Draft() {
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size, K = spec_.draft_tokens;
  const int64_t Vd = draft_vocab_;  // logits [rows, Vd]
  std::vector<Seq*>& active = active_seqs_;  // member: no allocation per round
  active.clear();
  for (auto& s : seqs_)
    if (!s.done) active.push_back(&s);
  batch_.Clear();
  hidden_in_.clear();
  for (Seq* s : active) {
    cache_.set_length(s->slot, s->mtp_from, /*stack=*/1);  // drop rows built on old drafts
    for (int64_t i = s->mtp_from; i < s->n; ++i)  // position i reads (h_i, t_{i+1})
      batch_.Add(i + 1 < s->n ? s->out_tokens[i + 1] : s->pending, i, s->slot, i == s->n - 1);
    hidden_in_.insert(hidden_in_.end(), s->hidden.begin(), s->hidden.end());
  }
  // Draft 1 reads the main hidden rows; drafts 2..K the MTP layer's own
  // normalised output of the previous depth, mtp_h_ [active, d] (sized by Run).
  const float* hidden = hidden_in_.data();
  for (int64_t j = 0; j < K; ++j) {
    if (j > 0) {
      batch_.Clear();
      for (Seq* s : active) batch_.Add(s->drafts[j - 1], s->n + j - 1, s->slot, true);
      hidden = mtp_h_.data();
    }
    DSV3_RETURN_IF_ERROR(runner().ForwardMtp(model_, 0, batch_, hidden, cache_, ws_, Vd));
    for (size_t a = 0; a < active.size(); ++a) {
      Seq& s = *active[a];
      const int64_t row = batch_.logit_rows[a];
      std::memcpy(&mtp_h_[a * d], ws_.hidden.data() + row * d, d * sizeof(float));
      s.drafts[j] = DrawDraft(s.sampler, ws_.logits.data() + a * Vd, Vd, V, s.q.data() + j * V);
    }
  }
  for (Seq* s : active) {
    s->mtp_from = s->n;
    s->hidden.clear();
    s->sampler.Rollback(static_cast<int64_t>(s->out.size()));  // the drafts were tentative
  }
  return Status::Ok();
}

int32_t DrawDraft(Sampler& sampler, const float* logits, int64_t draft_vocab, int64_t V, float* q) {
  int32_t draft;
  if (sampler.options().greedy()) {
    draft = sampler.Greedy(logits, draft_vocab);
  } else {
    sampler.Distribution(logits, draft_vocab, q);
    std::fill(q + draft_vocab, q + V, 0.0f);
    draft = sampler.SampleFrom(q, draft_vocab);
  }
  sampler.Accept(draft);  // the next depth's penalties see it; rolled back after drafting
  return draft;
}

int64_t AcceptDrafts(Sampler& sampler, const float* logits, std::span<const int32_t> drafts, const float* q,
                     int64_t V, float* probs, float* residual, int32_t* next) {
  // Row j's penalties count drafts 0..j-1 as generated: they are accepted
  // tentatively here and rolled back at the end; the caller accepts what it emits.
  const int64_t mark = sampler.accepted();
  const int64_t taken = AcceptPrefix(sampler, logits, drafts, q, V, probs, residual, next);
  sampler.Rollback(mark);
  return taken;
}

int64_t SpeculativeDecoder::Accept(Seq& s, const float* logits, int32_t* next) {
  const int64_t V = model_.config().vocab_size;
  return AcceptDrafts(s.sampler, logits, s.drafts, s.q.data(), V, probs_.data(), residual_.data(), next);
}

bool SpeculativeDecoder::Emit(int64_t index, Seq& s, int32_t token, const BatchTokenCallback& on_token) {
  const auto& eos = model_.config().eos_token_ids;
  s.out.push_back(token);
  s.sampler.Accept(token);
  ++stats_.emitted;
  const bool stop = (gen_.stop_at_eos && std::count(eos.begin(), eos.end(), token)) ||
                    std::count(gen_.stop_token_ids.begin(), gen_.stop_token_ids.end(), token);
  const bool keep = on_token ? on_token(index, token) : true;
  if (stop || !keep || static_cast<int64_t>(s.out.size()) >= gen_.max_new_tokens) s.done = true;
  return !s.done;
}

Status SpeculativeDecoder::VerifyAndAccept(const BatchTokenCallback& on_token) {
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size, K = spec_.draft_tokens;
  batch_.Clear();
  std::vector<int64_t>& active = active_ids_;
  active.clear();
  for (size_t i = 0; i < seqs_.size(); ++i) {
    Seq& s = seqs_[i];
    if (s.done) continue;
    active.push_back(i);
    batch_.Add(s.pending, s.n, s.slot, true);
    for (int64_t j = 0; j < K; ++j) batch_.Add(s.drafts[j], s.n + 1 + j, s.slot, true);
  }
  DSV3_RETURN_IF_ERROR(runner().Forward(model_, batch_, cache_, ws_));
  for (size_t a = 0; a < active.size(); ++a) {
    Seq& s = seqs_[active[a]];
    const int64_t base = a * (K + 1);
    int32_t next = 0;
    const int64_t accepted = Accept(s, ws_.logits.data() + base * V, &next);
    ++stats_.rounds;
    stats_.drafted += K;
    stats_.accepted += accepted;
    for (int64_t j = 0; j < K; ++j) ++stats_.proposed_at[j];
    for (int64_t j = 0; j < accepted; ++j) ++stats_.accepted_at[j];
    // Rows n..n+accepted are now real context; the rest are dropped.
    s.hidden.insert(s.hidden.end(), ws_.hidden.begin() + base * d, ws_.hidden.begin() + (base + accepted + 1) * d);
    s.out_tokens.push_back(s.pending);
    for (int64_t j = 0; j < accepted; ++j) s.out_tokens.push_back(s.drafts[j]);
    s.n += accepted + 1;
    cache_.set_length(s.slot, s.n, /*stack=*/0);
    s.pending = next;
    bool going = true;
    for (int64_t j = 0; j < accepted && going; ++j) going = Emit(active[a], s, s.drafts[j], on_token);
    if (going) Emit(active[a], s, next, on_token);
  }
  return Status::Ok();
}

Expected<std::vector<std::vector<int32_t>>> SpeculativeDecoder::Run(const std::vector<std::vector<int32_t>>& prompts,
                                                                    const BatchTokenCallback& on_token) {
  const Config& c = model_.config();
  if (!model_.has_mtp())
    return Status::Error("--spec mtp: the model has no MTP layer (num_nextn_predict_layers is 0)");
  if (spec_.draft_tokens < 1) return Status::Error("--draft-tokens must be >= 1");
  DSV3_ASSIGN_OR_RETURN(draft_vocab_, DraftVocab(c, spec_.draft_vocab));
  DSV3_RETURN_IF_ERROR(gen_.sampling.Validate(c.vocab_size));
  int64_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) return Status::Error("the prompt is empty: give at least one token");
    longest = std::max<int64_t>(longest, p.size());
  }
  const int64_t K = spec_.draft_tokens, V = c.vocab_size;
  if (longest + gen_.max_new_tokens > c.max_position_embeddings)
    return Status::Error("prompt + max_new_tokens exceeds max_position_embeddings " +
                         std::to_string(c.max_position_embeddings));
  cache_ = model_.NewCache(static_cast<int64_t>(prompts.size()), longest + gen_.max_new_tokens + K + 1);
  seqs_.clear();
  stats_ = SpecStats();
  stats_.proposed_at.assign(K, 0), stats_.accepted_at.assign(K, 0);
  for (size_t s = 0; s < prompts.size(); ++s) {
    SamplingOptions o = gen_.sampling;
    o.seed += s;
    seqs_.emplace_back(o);
    seqs_.back().sampler.Start(prompts[s], V);
    seqs_.back().slot = static_cast<int64_t>(s);
    seqs_.back().drafts.resize(K);
    seqs_.back().q.resize(K * V);
    seqs_.back().out_tokens = prompts[s];
    seqs_.back().out_tokens.reserve(prompts[s].size() + gen_.max_new_tokens + K + 1);
    seqs_.back().out.reserve(gen_.max_new_tokens + K + 1);
  }
  // Round buffers sized once: the token loop does not allocate.
  mtp_h_.assign(prompts.size() * c.hidden_size, 0.0f);
  active_seqs_.reserve(prompts.size()), active_ids_.reserve(prompts.size());
  probs_.resize(V), residual_.resize(V);
  double t0 = Now();
  DSV3_RETURN_IF_ERROR(Prefill(prompts));
  prefill_seconds_ = Now() - t0;
  t0 = Now();
  for (size_t s = 0; s < seqs_.size(); ++s) {
    seqs_[s].done = gen_.max_new_tokens == 0;
    if (!seqs_[s].done) Emit(s, seqs_[s], seqs_[s].pending, on_token);
  }
  while (std::any_of(seqs_.begin(), seqs_.end(), [](const Seq& s) { return !s.done; })) {
    DSV3_RETURN_IF_ERROR(Draft());
    DSV3_RETURN_IF_ERROR(VerifyAndAccept(on_token));
  }
  stats_.seconds = Now() - t0;
  std::vector<std::vector<int32_t>> out;
  for (auto& s : seqs_) out.push_back(std::move(s.out));
  return out;
}

Expected<std::vector<int32_t>> GenerateSpeculative(const Model& model, std::span<const int32_t> prompt,
                                                   const GenerateOptions& options, const SpecOptions& spec,
                                                   const TokenCallback& on_token, GenerateStats* stats,
                                                   SpecStats* spec_stats) {
  SpeculativeDecoder decoder(model, options, spec);
  auto out = decoder.Run({std::vector<int32_t>(prompt.begin(), prompt.end())},
                         [&](int64_t, int32_t token) { return on_token ? on_token(token) : true; });
  if (!out.ok()) return out.status();
  if (stats) {
    stats->prompt_tokens = static_cast<int64_t>(prompt.size());
    stats->generated_tokens = static_cast<int64_t>((*out)[0].size());
    stats->prefill_seconds = decoder.prefill_seconds();
    stats->decode_seconds = decoder.stats().seconds;
  }
  if (spec_stats) *spec_stats = decoder.stats();
  return std::move((*out)[0]);
}

}  // namespace dsv3
