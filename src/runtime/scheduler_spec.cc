// Speculative decoding inside continuous batching (scheduler.h). Each step:
// Draft() runs the MTP layer once over every sequence's waiting main hidden
// states (positions [mtp_from, main length): the rows of last step's prompt
// chunk or of its accepted tokens) and, for generating sequences, turns the
// last row into draft 1; depths 2..K feed the MTP layer its own normalised
// output. BuildSpecRows() puts [pending, drafts...] into the main batch;
// ConsumeSpec() accepts per sequence (AcceptDrafts, speculative.h), truncates
// the main stack to the accepted rows and keeps their hidden states for the
// next Draft(). Rows the MTP layer wrote from drafts are dropped by resetting
// its stack length, so it always ends a draft phase equal to the main stack.
#include <algorithm>

#include "runtime/scheduler.h"
#include "runtime/scheduler_sequence.h"

namespace dsv3 {

Status Scheduler::WarmupSpec() {
  // Buffers for the largest main batch (the MTP layer reads at most that many
  // rows), and one MTP forward of that size (batch_ still holds it).
  const Config& c = model_.config();
  const int64_t d = c.hidden_size, V = c.vocab_size, K = options_.draft_tokens;
  const int64_t slots = options_.max_sequences, rows = batch_.size();
  carry_.assign(rows * d, 0.0f);
  hidden_in_.assign(rows * d, 0.0f);
  mtp_h_.assign(slots * d, 0.0f);
  drafts_.assign(slots * K, 0);
  q_.assign(slots * K * V, 0.0f);
  probs_.assign(V, 0.0f), residual_.assign(V, 0.0f);
  draft_owner_.reserve(slots);
  spec_ = SpecStats();
  spec_.proposed_at.assign(K, 0), spec_.accepted_at.assign(K, 0);
  draft_vocab_ = *DraftVocab(c, options_.draft_vocab);  // validated by Create
  // The warm-up batch asks logits of more rows than a draft phase ever does.
  return runner_->ForwardMtp(model_, 0, batch_, hidden_in_.data(), cache_, ws_, draft_vocab_);
}

int64_t Scheduler::DraftBudget(const Sequence& seq) const {
  // A round emits up to drafts + 1 tokens and writes positions n .. n + drafts.
  const int64_t n = static_cast<int64_t>(slots_.tokens(seq.slot).size());
  const int64_t k = std::min<int64_t>({options_.draft_tokens, seq.req.max_tokens - seq.generated - 1,
                                       options_.context - 1 - n});
  return std::max<int64_t>(k, 0);
}

int32_t Scheduler::TokenAfter(const Sequence& seq, int64_t pos) const {
  // MTP position pos reads t_{pos+1}: in the slot, still in the prompt, or pending.
  const std::vector<int32_t>& tokens = slots_.tokens(seq.slot);
  const int64_t next = pos + 1;
  if (next < static_cast<int64_t>(tokens.size())) return tokens[next];
  if (next < static_cast<int64_t>(seq.req.prompt.size())) return seq.req.prompt[next];
  return seq.last_token;
}

void Scheduler::Draft() {
  const int64_t d = model_.config().hidden_size, K = options_.draft_tokens;
  batch_.Clear();
  draft_owner_.clear();
  int64_t rows = 0;
  for (auto& sp : active_) {
    Sequence& s = *sp;
    s.drafts_n = 0;
    if (s.carry_count == 0) continue;
    const int64_t budget = s.last_token >= 0 ? DraftBudget(s) : 0;
    for (int64_t i = 0; i < s.carry_count; ++i) {
      const int64_t pos = s.mtp_from + i;
      batch_.Add(TokenAfter(s, pos), static_cast<int32_t>(pos), static_cast<int32_t>(s.slot),
                 budget > 0 && i == s.carry_count - 1);
    }
    std::copy_n(carry_.data() + s.carry_row * d, s.carry_count * d, hidden_in_.data() + rows * d);
    rows += s.carry_count;
    s.mtp_from += s.carry_count;
    s.carry_count = 0;
    if (budget > 0) s.drafts_n = budget, draft_owner_.push_back(&s);
  }
  if (batch_.size() == 0) return;
  const float* hidden = hidden_in_.data();  // [rows, d]
  for (int64_t depth = 0; depth < K; ++depth) {
    if (Status st = runner_->ForwardMtp(model_, 0, batch_, hidden, cache_, ws_, draft_vocab_); !st.ok()) {
      FailSlots(batch_, st.WithContext("MTP draft"));
      break;
    }
    const int64_t owners = DraftPick(depth);
    if (owners == 0) break;
    batch_.Clear();
    for (int64_t a = 0; a < owners; ++a) {
      const Sequence& s = *draft_owner_[a];
      batch_.Add(drafts_[s.slot * K + depth], static_cast<int32_t>(s.mtp_from + depth), static_cast<int32_t>(s.slot),
                 true);
    }
    hidden = mtp_h_.data();  // [owners, d]
  }
  // Rows written from drafts are not context: the MTP stack ends where the
  // main one does, and the sampler's history where the emitted tokens do.
  for (auto& s : active_) {
    if (s->finished) continue;
    runner_->SetLength(cache_, s->slot, s->mtp_from, /*stack=*/1);
    s->sampler.Rollback(s->generated);
  }
}

int64_t Scheduler::DraftPick(int64_t depth) {
  // ws_.logits row a belongs to draft_owner_[a]; keeps the owners that want
  // another draft, their MTP output moved to mtp_h_ in the same order.
  const int64_t d = model_.config().hidden_size, V = model_.config().vocab_size, K = options_.draft_tokens;
  const int64_t Vd = draft_vocab_;  // logits [owners, Vd]
  int64_t kept = 0;
  for (size_t a = 0; a < draft_owner_.size(); ++a) {
    Sequence& s = *draft_owner_[a];
    drafts_[s.slot * K + depth] =
        DrawDraft(s.sampler, ws_.logits.data() + a * Vd, Vd, V, q_.data() + (s.slot * K + depth) * V);
    if (s.drafts_n > depth + 1) {
      std::copy_n(ws_.hidden.data() + batch_.logit_rows[a] * d, d, mtp_h_.data() + kept * d);
      draft_owner_[kept++] = &s;
    }
  }
  draft_owner_.resize(kept);
  return kept;
}

void Scheduler::BuildSpecRows(Sequence& seq) {
  const int64_t K = options_.draft_tokens;
  std::vector<int32_t>& tokens = slots_.tokens(seq.slot);
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int32_t slot = static_cast<int32_t>(seq.slot);
  seq.batch_row = batch_.size(), seq.batch_count = 1 + seq.drafts_n;
  batch_.Add(seq.last_token, static_cast<int32_t>(n), slot, true);
  tokens.push_back(seq.last_token);
  for (int64_t j = 0; j < seq.drafts_n; ++j) {
    const int32_t draft = drafts_[seq.slot * K + j];
    batch_.Add(draft, static_cast<int32_t>(n + 1 + j), slot, true);
    tokens.push_back(draft);
  }
  row_owner_.push_back(&seq);
}

void Scheduler::Carry(Sequence& seq, int64_t batch_row, int64_t count) {
  const int64_t d = model_.config().hidden_size;
  std::copy_n(ws_.hidden.data() + batch_row * d, count * d, carry_.data() + carry_used_ * d);
  seq.carry_row = carry_used_, seq.carry_count = count;
  carry_used_ += count;
}

void Scheduler::ConsumeSpec() {
  const int64_t V = model_.config().vocab_size;
  carry_used_ = 0;
  for (auto& s : active_)  // prompt chunks: every row's hidden state goes to the MTP layer next step
    if (s->last_token < 0 && s->batch_count > 0) Carry(*s, s->batch_row, s->batch_count);
  int64_t row = 0;  // logit row
  for (Sequence* s : row_owner_) {
    const float* logits = ws_.logits.data() + row * V;
    if (s->last_token >= 0) {
      row += s->batch_count;
      Verify(*s, logits);
    } else {
      row += 1;
      Emit(*s, logits);
    }
  }
}

void Scheduler::Verify(Sequence& seq, const float* logits) {
  // logits [drafts_n + 1, V] for [pending, drafts...] at positions n .. n + drafts_n.
  const int64_t V = model_.config().vocab_size, K = options_.draft_tokens, k = seq.drafts_n;
  std::vector<int32_t>& tokens = slots_.tokens(seq.slot);
  const int64_t n = static_cast<int64_t>(tokens.size()) - seq.batch_count;
  const int32_t* drafts = drafts_.data() + seq.slot * K;
  int32_t next = 0;
  const int64_t accepted = AcceptDrafts(seq.sampler, logits, std::span<const int32_t>(drafts, k),
                                        q_.data() + seq.slot * K * V, V, probs_.data(), residual_.data(), &next);
  // Rows n .. n + accepted are context now; the rest are forgotten.
  tokens.resize(n + accepted + 1);
  runner_->SetLength(cache_, seq.slot, n + accepted + 1, /*stack=*/0);
  Carry(seq, seq.batch_row, accepted + 1);
  const int64_t before = step_emitted_;
  bool going = true;
  for (int64_t j = 0; j < accepted && going; ++j) going = EmitToken(seq, drafts[j], logits + j * V, false);
  if (going) EmitToken(seq, next, logits + accepted * V, true);
  if (k == 0) return;  // a plain decode step (no room for drafts)
  spec_.rounds += 1;
  spec_.drafted += k;
  spec_.accepted += accepted;
  for (int64_t j = 0; j < k; ++j) spec_.proposed_at[j] += 1;
  for (int64_t j = 0; j < accepted; ++j) spec_.accepted_at[j] += 1;
  spec_.emitted += step_emitted_ - before;
}

}  // namespace dsv3
