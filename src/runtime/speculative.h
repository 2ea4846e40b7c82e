// Exact speculative decoding with the model's own MTP layer as the drafter.
// Each round, per sequence: the MTP layer catches up on the main model's
// hidden states from the last round and proposes K tokens (draft 1 from the
// main hidden state, drafts 2..K by feeding the MTP layer its own normalised
// output); the main model verifies [pending token, drafts...] in one batched
// forward; the longest acceptable prefix plus one corrected (or bonus) token
// is emitted. Greedy acceptance is exact match; with sampling, standard
// rejection sampling keeps the output distribution exactly the main model's.
// Rejected rows are dropped by truncating both caches by position.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"
#include "runtime/generate.h"
#include "runtime/sampler.h"

namespace dsv3 {

struct SpecOptions {
  int draft_tokens = 1;      // K >= 1
  int64_t draft_vocab = 0;   // > 0: drafts only among token ids [0, draft_vocab) (see DraftVocab)
};

// The vocabulary drafts are drawn from: the whole of it (draft_vocab 0), or
// its first draft_vocab ids, where byte-level BPE vocabularies keep their
// most frequent tokens; the MTP head then reads only those rows. Exactness
// does not depend on it: a draft outside it is simply never proposed, and
// rejection sampling uses the restricted distribution q actually sampled.
// Errors name --draft-vocab when it exceeds the vocabulary.
Expected<int64_t> DraftVocab(const Config& config, int64_t draft_vocab);

struct SpecStats {
  int64_t rounds = 0;          // main-model verification forwards (per sequence)
  int64_t drafted = 0;         // draft tokens proposed
  int64_t accepted = 0;        // draft tokens accepted
  std::vector<int64_t> proposed_at, accepted_at;  // per draft position [K]
  int64_t emitted = 0;         // tokens emitted by speculative rounds
  double seconds = 0;          // time spent in rounds (excluding prefill)

  double acceptance() const { return drafted ? static_cast<double>(accepted) / drafted : 0.0; }
  double tokens_per_forward() const { return rounds ? static_cast<double>(emitted) / rounds : 0.0; }
};

// One draft token from the MTP logits [draft_vocab] (ids [0, draft_vocab) of
// a V-token vocabulary): the argmax when greedy, else a sample from q [V],
// the sampler's distribution over those ids and zero past them (what
// AcceptDrafts needs to keep sampling exact; q is left alone when greedy).
// The draft joins the sampler's history (its penalties) tentatively: the
// caller rolls back to the emitted tokens once the drafts are drawn.
int32_t DrawDraft(Sampler& sampler, const float* logits, int64_t draft_vocab, int64_t V, float* q);

// The acceptance rule of one verification round: logits [k+1, V] are the main
// model's for [pending, drafts...], drafts [k] were drawn from q [k, V] (the
// draft distributions; unused when greedy). Returns how many leading drafts
// are accepted and writes the token that follows them to *next (the
// correction drawn from max(0, p - q), or a bonus token from the last row).
// probs and residual are [V] scratch. The sampler's history is the same
// afterwards; the caller accepts the tokens it emits.
int64_t AcceptDrafts(Sampler& sampler, const float* logits, std::span<const int32_t> drafts, const float* q,
                     int64_t V, float* probs, float* residual, int32_t* next);

// One prompt per sequence; on_token(sequence, token) receives tokens in order.
using BatchTokenCallback = std::function<bool(int64_t sequence, int32_t token)>;

class SpeculativeDecoder {
 public:
  SpeculativeDecoder(const Model& model, const GenerateOptions& gen, const SpecOptions& spec);

  // Generates for every prompt in one shared batch; returns the tokens of
  // each sequence. Sequence s samples with seed gen.sampling.seed + s.
  Expected<std::vector<std::vector<int32_t>>> Run(const std::vector<std::vector<int32_t>>& prompts,
                                                  const BatchTokenCallback& on_token);
  const SpecStats& stats() const { return stats_; }
  double prefill_seconds() const { return prefill_seconds_; }

 private:
  struct Seq {
    int64_t slot = 0, n = 0;          // main cache holds positions [0, n)
    int32_t pending = 0;              // t_n: emitted, not yet in the main cache
    int64_t mtp_from = 0;             // MTP cache holds [0, mtp_from); hidden rows from there on
    std::vector<float> hidden;        // [n - mtp_from, d] main hidden states h_{mtp_from..n-1}
    std::vector<int32_t> drafts;      // [K]
    std::vector<float> q;             // [K, V] draft distributions
    std::vector<int32_t> out;         // emitted tokens
    std::vector<int32_t> out_tokens;  // t_0 .. t_{n-1}: prompt and accepted context
    bool done = false;
    Sampler sampler;
    explicit Seq(const SamplingOptions& o) : sampler(o) {}
  };

  Status Prefill(const std::vector<std::vector<int32_t>>& prompts);
  Status Draft();
  Status VerifyAndAccept(const BatchTokenCallback& on_token);
  int64_t Accept(Seq& s, const float* logits, int32_t* next);  // returns accepted drafts
  bool Emit(int64_t index, Seq& s, int32_t token, const BatchTokenCallback& on_token);

  const Model& model_;
  GenerateOptions gen_;
  SpecOptions spec_;
  std::vector<Seq> seqs_;
  KvCache cache_;
  Workspace ws_;
  StepRunner direct_;  // when gen_.runner is null
  StepRunner& runner() { return gen_.runner ? *gen_.runner : direct_; }
  Batch batch_;
  std::vector<float> hidden_in_, probs_, residual_;  // [rows, d], [V], [V]
  std::vector<float> mtp_h_;                         // [sequences, d] MTP output fed back for drafts 2..K
  std::vector<Seq*> active_seqs_;                    // sequences still generating (Draft)
  std::vector<int64_t> active_ids_;                  // their indices (VerifyAndAccept)
  SpecStats stats_;
  int64_t draft_vocab_ = 0;  // ids drafts are drawn from: [0, draft_vocab_)
  double prefill_seconds_ = 0;
};

// Single-sequence convenience with Generate's signature and stop rules.
Expected<std::vector<int32_t>> GenerateSpeculative(const Model& model, std::span<const int32_t> prompt,
                                                   const GenerateOptions& options, const SpecOptions& spec,
                                                   const TokenCallback& on_token, GenerateStats* stats = nullptr,
                                                   SpecStats* spec_stats = nullptr);

}  // namespace dsv3
