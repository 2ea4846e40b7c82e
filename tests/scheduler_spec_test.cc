// MTP speculative decoding inside continuous batching must not change what a
// request gets: greedy output through the scheduler with K = 1, 2, 3 drafts
// equals Generate()'s for many concurrent requests of different lengths
// (prompts over several prefill chunks, each sequence accepting its own
// number of drafts), also with prefix reuse (free slot, copy from a running
// sequence), after cancellations, with an FP8 KV cache, and with sampling the
// distribution of continuations stays the main model's (chi-square). A model
// without an MTP layer is refused with a clear error.
//
// The golden models' MTP layers are random, so their drafts are almost never
// accepted; AgreeingMtp() derives a checkpoint whose MTP layer predicts what
// the main model mostly predicts, so rounds that accept 1..K drafts (and stop
// inside a round) are exercised too.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "io/safetensors.h"
#include "io/safetensors_writer.h"

#include "runtime/generate.h"
#include "runtime/scheduler.h"
#include "runtime/token_constraint.h"
#include "request_collector.h"
#include "spec_test_util.h"

namespace dsv3 {
namespace {

std::unique_ptr<Model> LoadGolden(const std::string& name, KvCacheType kv = KvCacheType::kF32) {
  LoadOptions lo;
  lo.kv_cache = kv;
  auto m = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/" + name, lo);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::move(m).value();
}

// v3_tiny_bf16 with every attention output and FFN down projection of the
// main model scaled by `context_scale`, and an MTP block that passes the
// normalised embedding of t_{i+1} to the shared head (eh_proj = [I 0],
// shared_head.norm = model.norm) plus its own block's outputs scaled by
// `mtp_scale`. The main model is then a bigram model plus a context term of
// that size, and the MTP layer predicts the bigram part: with both scales 0
// every draft is accepted, with larger ones some are rejected, and with
// mtp_scale > 0 the drafts depend on the MTP layer's own latent cache.
std::string AgreeingMtp(float context_scale, float mtp_scale, const std::string& name) {
  namespace fs = std::filesystem;
  const std::string src = std::string(DSV3_GOLDEN_DIR) + "/v3_tiny_bf16", dir = std::string(DSV3_TEST_TMP) + "/" + name;
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir + "/config.json", fs::copy_options::overwrite_existing);
  auto file = SafetensorsFile::Open(src + "/model.safetensors");
  EXPECT_TRUE(file.ok());
  const int mtp_layer = 3;  // num_hidden_layers of v3_tiny_bf16
  const std::string mtp = "model.layers." + std::to_string(mtp_layer) + ".";
  std::vector<std::vector<uint16_t>> data;  // bf16 copies
  std::vector<TensorToWrite> out;
  data.reserve((*file)->tensors().size());
  for (const TensorInfo& t : (*file)->tensors()) {
    std::vector<uint8_t> bytes(t.data, t.data + t.nbytes);
    const bool in_mtp = t.name.rfind(mtp, 0) == 0;
    const bool output_proj = t.name.find("o_proj.weight") != std::string::npos ||
                             t.name.find("down_proj.weight") != std::string::npos;
    auto source = [&](const std::string& other) {  // copy another tensor's bytes
      const TensorInfo* o = (*file)->Find(other);
      EXPECT_TRUE(o && o->nbytes == t.nbytes) << other;
      bytes.assign(o->data, o->data + o->nbytes);
    };
    if (t.name == mtp + "shared_head.norm.weight") source("model.norm.weight");
    if (t.name == mtp + "shared_head.head.weight") source("lm_head.weight");
    if (t.name == mtp + "embed_tokens.weight") source("model.embed_tokens.weight");
    if (t.dtype == DType::kBF16) {
      std::vector<uint16_t> v(t.numel());
      std::memcpy(v.data(), bytes.data(), t.nbytes);
      if (output_proj)
        for (auto& x : v) x = F32ToBf16(Bf16ToF32(x) * (in_mtp ? mtp_scale : context_scale));
      if (t.name == mtp + "enorm.weight")
        for (auto& x : v) x = F32ToBf16(1.0f);
      if (t.name == mtp + "eh_proj.weight") {  // [d, 2d] = [I 0]
        const int64_t d = t.shape[0];
        for (int64_t r = 0; r < d; ++r)
          for (int64_t c = 0; c < 2 * d; ++c) v[r * 2 * d + c] = F32ToBf16(r == c ? 1.0f : 0.0f);
      }
      data.push_back(std::move(v));
      out.push_back({{t.name, t.dtype, t.shape}, data.back().data()});
    } else {
      data.emplace_back((bytes.size() + 1) / 2);
      std::memcpy(data.back().data(), bytes.data(), bytes.size());
      out.push_back({{t.name, t.dtype, t.shape}, data.back().data()});
    }
  }
  EXPECT_TRUE(WriteSafetensors(dir + "/model.safetensors", out).ok());
  return dir;
}

// One request's tokens and finish, waitable from the test thread.
using Out = testing::RequestCollector;

std::vector<int32_t> Reference(const Model& m, const std::vector<int32_t>& prompt, int64_t n,
                               const SamplingOptions& sampling = {}) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling = sampling;
  o.stop_at_eos = false;
  auto out = Generate(m, prompt, o, nullptr);
  EXPECT_TRUE(out.ok()) << out.status().message();
  return *out;
}

std::vector<int32_t> Prompt(int64_t len, int32_t salt, int64_t vocab) {
  std::vector<int32_t> p(len);
  for (int64_t i = 0; i < len; ++i) p[i] = static_cast<int32_t>((i * 37 + salt * 101 + 7) % vocab);
  return p;
}

SchedulerOptions SpecOpts(int k, int64_t slots = 3, int64_t chunk = 7, int64_t context = 128) {
  SchedulerOptions so;
  so.max_sequences = slots, so.prefill_chunk = chunk, so.context = context, so.draft_tokens = k;
  return so;
}

// Submits `prompts` at once (more than there are slots) and checks each
// against Generate(); returns the scheduler's statistics.
SchedulerStats ExpectGreedyMatches(const Model& model, const SchedulerOptions& so,
                                   const std::vector<std::vector<int32_t>>& prompts, int64_t max_tokens_base,
                                   const SamplingOptions& sampling = {}) {
  auto sched = Scheduler::Start(model, so);
  EXPECT_TRUE(sched.ok()) << sched.status().message();
  if (!sched.ok()) return {};
  std::vector<Out> out(prompts.size());
  std::vector<int64_t> max_tokens(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest r;
    r.prompt = prompts[i], r.max_tokens = max_tokens[i] = max_tokens_base + 5 * (i % 4), r.stop_at_eos = false;
    r.sampling = sampling;
    out[i].Attach(r);
    EXPECT_EQ((*sched)->Submit(std::move(r)).code, SubmitCode::kAccepted);
  }
  for (size_t i = 0; i < prompts.size(); ++i) {
    out[i].Wait();
    EXPECT_EQ(out[i].tokens, Reference(model, prompts[i], max_tokens[i], sampling))
        << "K=" << so.draft_tokens << " request " << i;
    EXPECT_EQ(out[i].info.reason, FinishReason::kLength);
  }
  EXPECT_TRUE((*sched)->WaitIdle(10));
  const SchedulerStats st = (*sched)->Stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_LE(st.max_batch_tokens_seen, so.max_sequences * (1 + so.draft_tokens) + so.prefill_chunk);
  return st;
}

void GreedyForEveryK(const std::string& name, KvCacheType kv) {
  auto model = LoadGolden(name, kv);
  const int64_t V = model->config().vocab_size;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 7; ++i) prompts.push_back(Prompt(2 + 6 * i, i, V));
  for (int k = 1; k <= 3; ++k) {
    const SchedulerStats st = ExpectGreedyMatches(*model, SpecOpts(k), prompts, 10);
    const SpecStats& s = st.spec;
    EXPECT_EQ(st.draft_tokens, k);
    EXPECT_GT(s.rounds, 0);
    EXPECT_LE(s.drafted, k * s.rounds);
    EXPECT_LE(s.accepted, s.drafted);
    int64_t accepted = 0;
    for (int j = 0; j < k; ++j) {
      accepted += s.accepted_at[j];
      if (j > 0) {
        EXPECT_LE(s.accepted_at[j], s.accepted_at[j - 1]);  // position j + 1 needs position j
      }
    }
    EXPECT_EQ(accepted, s.accepted);
    EXPECT_LE(s.emitted, s.accepted + s.rounds);  // a round emits accepted + 1 (fewer when a stop cuts it)
    EXPECT_LE(s.emitted, st.generated_tokens);
    std::printf("  %s K=%d: %lld rounds, %lld/%lld drafts accepted (%.1f%%), %.2f tokens per round\n", name.c_str(),
                k, (long long)s.rounds, (long long)s.accepted, (long long)s.drafted, 100.0 * s.acceptance(),
                s.tokens_per_forward());
  }
}

void GreedyWithAcceptance(float context_scale, double min_acceptance, double max_acceptance) {
  auto m = Model::Load(AgreeingMtp(context_scale, 0.0f, "spec_agree_" + std::to_string(context_scale)));
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = (*m)->config().vocab_size;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 7; ++i) prompts.push_back(Prompt(1 + 5 * i, 10 + i, V));
  for (int k = 1; k <= 3; ++k) {
    const SchedulerStats st = ExpectGreedyMatches(**m, SpecOpts(k), prompts, 11);
    const SpecStats& s = st.spec;
    EXPECT_GE(s.acceptance(), min_acceptance) << "K=" << k;
    EXPECT_LE(s.acceptance(), max_acceptance) << "K=" << k;
    EXPECT_LE(s.emitted, s.accepted + s.rounds);
    std::printf("  agreeing MTP (context scale %.2f) K=%d: %lld/%lld drafts accepted (%.1f%%), %.2f tokens per round\n",
                context_scale, k, (long long)s.accepted, (long long)s.drafted, 100.0 * s.acceptance(),
                s.tokens_per_forward());
  }
}

TEST(SchedulerSpec, GreedyMatchesGenerateWhenDraftsAreAccepted) { GreedyWithAcceptance(0.0f, 0.9, 1.0); }

// Penalties make a token's logits depend on the drafts before it in the same
// round: drafting and verification count them tentatively and roll back, so
// greedy output still equals Generate()'s, and drafts drawn under the same
// penalties are still accepted.
TEST(SchedulerSpec, GreedyWithPenaltiesMatchesGenerate) {
  auto m = Model::Load(AgreeingMtp(0.0f, 0.0f, "spec_agree_penalties"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = (*m)->config().vocab_size;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 5; ++i) prompts.push_back(Prompt(1 + 5 * i, 20 + i, V));
  SamplingOptions penalties;
  penalties.repetition_penalty = 1.6f, penalties.frequency_penalty = 0.7f, penalties.presence_penalty = 0.4f;
  penalties.logit_bias = {{3, kBanBias}, {11, 2.0f}};
  EXPECT_NE(Reference(**m, prompts[2], 20, penalties), Reference(**m, prompts[2], 20));  // they do change the output
  for (int k = 1; k <= 3; ++k) {
    const SchedulerStats st = ExpectGreedyMatches(**m, SpecOpts(k), prompts, 14, penalties);
    EXPECT_GT(st.spec.acceptance(), 0.5) << "K=" << k;
  }
}
TEST(SchedulerSpec, GreedyMatchesGenerateWithPartialAcceptance) { GreedyWithAcceptance(0.5f, 0.05, 0.95); }

// A synthetic vocabulary for the 384-id golden models: ids 2..96 are the
// printable ASCII bytes, the rest short strings JSON needs, id 1 (eos) ends.
std::shared_ptr<const TokenGrammar> TestGrammar(int64_t vocab) {
  TokenVocabulary v;
  v.bytes.resize(vocab), v.special.assign(vocab, 0);
  const char* extra[] = {"{\"", "\":", "\",\"", "\"}", "true", "null", ", ", "]}", "12", "ab", "\"a\""};
  for (int64_t id = 0; id < vocab; ++id) {
    if (id >= 2 && id < 97) v.bytes[id] = std::string(1, static_cast<char>(30 + id));
    else if (id >= 97) v.bytes[id] = extra[(id - 97) % 11];
  }
  v.special[0] = v.special[1] = 1;
  v.end_tokens = {1};
  auto schema = CompileJsonSchema(nlohmann::ordered_json::parse(R"({"type":"object","properties":{
      "a":{"type":"string","maxLength":6},"b":{"type":"array","items":{"type":"integer"},"maxItems":3},
      "c":{"anyOf":[{"type":"boolean"},{"type":"null"}]}},"required":["a","c"],"additionalProperties":false})"));
  EXPECT_TRUE(schema.ok()) << schema.status().message();
  return std::make_shared<TokenGrammar>(std::move(*schema), v);
}

// Drafts are checked against the grammar: the MTP layer drafts under the same
// mask, verification re-applies it with the drafts accepted tentatively, and
// constrained greedy output equals Generate()'s constrained output, K = 1..3.
TEST(SchedulerSpec, GrammarConstrainedGreedyMatchesGenerate) {
  auto m = Model::Load(AgreeingMtp(0.0f, 0.0f, "spec_agree_grammar"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = (*m)->config().vocab_size;
  auto grammar = TestGrammar(V);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(Prompt(2 + 5 * i, 30 + i, V));
  GenerateOptions g;
  g.max_new_tokens = 100, g.grammar = grammar;
  for (int k = 1; k <= 3; ++k) {
    auto sched = Scheduler::Start(**m, SpecOpts(k));
    ASSERT_TRUE(sched.ok());
    std::vector<Out> out(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      GenerationRequest r;
      r.prompt = prompts[i], r.max_tokens = 100, r.grammar = grammar;
      out[i].Attach(r);
      ASSERT_EQ((*sched)->Submit(std::move(r)).code, SubmitCode::kAccepted);
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      out[i].Wait();
      auto ref = Generate(**m, prompts[i], g, nullptr);
      ASSERT_TRUE(ref.ok()) << ref.status().message();
      EXPECT_EQ(out[i].tokens, *ref) << "K=" << k << " prompt " << i;
      ASSERT_FALSE(out[i].tokens.empty());
      EXPECT_EQ(out[i].tokens.back(), 1) << "the document was completed and ended";
    }
  }
}

// The mask never removes the argmax when it is valid: at every step of a
// constrained greedy generation, if the model's own argmax (given the
// constrained prefix) may continue the document it is the token taken; so an
// unconstrained greedy output that already is a valid document comes out
// unchanged.
TEST(SchedulerSpec, GrammarKeepsTheArgmaxWhereItIsValid) {
  auto m = LoadGolden("v3_tiny_bf16");
  const int64_t V = m->config().vocab_size;
  auto grammar = TestGrammar(V);
  int kept = 0, replaced = 0;
  for (int i = 0; i < 4; ++i) {
    const std::vector<int32_t> prompt = Prompt(3 + i, 50 + i, V);
    GenerateOptions g;
    g.max_new_tokens = 30, g.grammar = grammar;
    auto constrained = Generate(*m, prompt, g, nullptr);
    ASSERT_TRUE(constrained.ok());
    JsonState state = grammar->grammar().Start();
    std::vector<int32_t> ctx = prompt;
    for (int32_t token : *constrained) {
      KvCache cache = m->NewCache(1, ctx.size());
      Workspace ws;
      Batch b;
      for (size_t p = 0; p < ctx.size(); ++p) b.Add(ctx[p], p, 0, p + 1 == ctx.size());
      ASSERT_TRUE(m->Forward(b, cache, ws).ok());
      const int32_t argmax = ArgMax(ws.logits.data(), V);
      JsonState copy = state;
      if (grammar->Accept(&copy, argmax)) {
        EXPECT_EQ(token, argmax) << "prompt " << i << " step " << ctx.size() - prompt.size();
        ++kept;
      } else {
        ++replaced;
      }
      ASSERT_TRUE(grammar->Accept(&state, token));
      ctx.push_back(token);
    }
  }
  EXPECT_GT(kept, 5);  // both cases are exercised
  EXPECT_GT(replaced, 5);
  std::printf("  argmax valid and kept at %d steps; refused by the grammar (replaced) at %d\n", kept, replaced);
}

// The MTP latent cache must follow the sequence whatever the batching: the
// same requests run together with prefix reuse, and one by one without it,
// see the same drafts (same acceptance per position) and the same tokens.
TEST(SchedulerSpec, MtpCacheIndependentOfBatchingAndReuse) {
  auto m = Model::Load(AgreeingMtp(0.25f, 0.5f, "spec_agree_mtp_attn"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = (*m)->config().vocab_size;
  const std::vector<int32_t> shared = Prompt(30, 21, V);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) {
    std::vector<int32_t> p(shared.begin(), shared.begin() + 12 + 3 * i);
    for (int j = 0; j <= i; ++j) p.push_back(static_cast<int32_t>((50 + 7 * i + j) % V));
    prompts.push_back(p);
  }
  const SchedulerStats together = ExpectGreedyMatches(**m, SpecOpts(3, 3, 9), prompts, 14);
  EXPECT_GT(together.cached_prompt_tokens, 0);
  SpecStats alone;
  alone.accepted_at.assign(3, 0);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SchedulerOptions o = SpecOpts(3, 1, 64);
    o.prefix_reuse = false;
    const SchedulerStats st = ExpectGreedyMatches(**m, o, {prompts[i]}, 14 + 5 * (i % 4));
    alone.accepted += st.spec.accepted, alone.drafted += st.spec.drafted;
    for (int j = 0; j < 3; ++j) alone.accepted_at[j] += st.spec.accepted_at[j];
  }
  EXPECT_GT(together.spec.accepted, 0);
  EXPECT_LT(together.spec.accepted, together.spec.drafted);
  EXPECT_EQ(together.spec.accepted_at, alone.accepted_at);
  EXPECT_EQ(together.spec.drafted, alone.drafted);
  std::printf("  together: %lld/%lld accepted; alone: %lld/%lld\n", (long long)together.spec.accepted,
              (long long)together.spec.drafted, (long long)alone.accepted, (long long)alone.drafted);
}

TEST(SchedulerSpec, GreedyMatchesGenerateBf16) { GreedyForEveryK("v3_tiny_bf16", KvCacheType::kF32); }
TEST(SchedulerSpec, GreedyMatchesGenerateFp8) { GreedyForEveryK("v3_tiny_fp8", KvCacheType::kF32); }
TEST(SchedulerSpec, GreedyMatchesGenerateFp8KvCache) { GreedyForEveryK("v3_tiny_bf16", KvCacheType::kF8E4M3); }

// Prefix reuse keeps both stacks in step: a, then a + 3 tokens, then a again
// (free-slot reuse), and a prompt sharing 48 tokens with a running sequence
// (copy). One more token is recomputed than without speculation: the MTP row
// of the last reused position was built with the old sequence's next token.
void PrefixReuse(KvCacheType kv) {
  auto model = LoadGolden("v3_tiny_bf16", kv);
  const int64_t V = model->config().vocab_size;
  auto sched = Scheduler::Start(*model, SpecOpts(2, 2, 16));
  ASSERT_TRUE(sched.ok()) << sched.status().message();
  const std::vector<int32_t> a = Prompt(40, 1, V);
  std::vector<int32_t> b = a;
  b.push_back(5), b.push_back(9), b.push_back(13);
  for (const auto& prompt : {a, b, a}) {
    Out o;
    GenerationRequest r;
    r.prompt = prompt, r.max_tokens = 9, r.stop_at_eos = false;
    o.SubmitAndWait(**sched, std::move(r));
    EXPECT_EQ(o.tokens, Reference(*model, prompt, 9));
  }
  EXPECT_EQ((*sched)->Stats().cached_prompt_tokens, 39 + 38);
  const std::vector<int32_t> shared = Prompt(48, 3, V);
  std::vector<int32_t> p1 = shared, p2 = shared;
  p1.push_back(2), p2.push_back(3), p2.push_back(4);
  Out o1, o2;
  GenerationRequest r1, r2;
  r1.prompt = p1, r1.max_tokens = 40, r1.stop_at_eos = false;
  r2.prompt = p2, r2.max_tokens = 12, r2.stop_at_eos = false;
  o1.Attach(r1), o2.Attach(r2);
  ASSERT_EQ((*sched)->Submit(std::move(r1)).code, SubmitCode::kAccepted);
  o1.WaitTokens(2);  // p1 is decoding in its slot
  ASSERT_EQ((*sched)->Submit(std::move(r2)).code, SubmitCode::kAccepted);
  o1.Wait(), o2.Wait();
  EXPECT_EQ(o2.info.cached_prompt_tokens, 47);
  EXPECT_EQ(o1.tokens, Reference(*model, p1, 40));
  EXPECT_EQ(o2.tokens, Reference(*model, p2, 12));
}

TEST(SchedulerSpec, PrefixReuseKeepsTokens) { PrefixReuse(KvCacheType::kF32); }
TEST(SchedulerSpec, PrefixReuseKeepsTokensFp8KvCache) { PrefixReuse(KvCacheType::kF8E4M3); }

TEST(SchedulerSpec, CancelledSequencesLeaveReusableSlots) {
  auto model = LoadGolden("v3_tiny_bf16");
  const int64_t V = model->config().vocab_size;
  auto sched = Scheduler::Start(*model, SpecOpts(3, 2, 8, 200));
  ASSERT_TRUE(sched.ok());
  const auto prompt = Prompt(21, 6, V);
  for (int round = 0; round < 3; ++round) {  // cancel mid-stream, then the same prompt reuses the slot
    Out o;
    GenerationRequest r;
    r.prompt = prompt, r.max_tokens = 150, r.stop_at_eos = false;
    o.Attach(r);
    auto res = (*sched)->Submit(std::move(r));
    ASSERT_EQ(res.code, SubmitCode::kAccepted);
    o.WaitTokens(3 + 4 * round);
    res.handle->Cancel();
    o.Wait();
    EXPECT_EQ(o.info.reason, FinishReason::kCancelled);
  }
  Out o;
  GenerationRequest r;
  r.prompt = prompt, r.max_tokens = 30, r.stop_at_eos = false;
  o.SubmitAndWait(**sched, std::move(r));
  EXPECT_GT(o.info.cached_prompt_tokens, 0);
  EXPECT_EQ(o.tokens, Reference(*model, prompt, 30));
  ASSERT_TRUE((*sched)->WaitIdle(10));
  EXPECT_EQ((*sched)->Stats().running, 0);
}

void ExpectDistributionKept(const Model* model, int64_t draft_vocab = 0, bool penalties = false) {
  const std::vector<int32_t> prompt = {0, 17, 42, 5};
  SamplingOptions so;
  so.temperature = 1.5f, so.top_k = 3;  // several continuations matter
  if (penalties) so.repetition_penalty = 3.0f, so.frequency_penalty = 1.0f, so.presence_penalty = 0.5f;
  const auto exact = ExactContinuations(*model, prompt, so, 3);
  ASSERT_EQ(exact.size(), 27u);
  SchedulerOptions o = SpecOpts(2, 8, 64, 16);
  o.threads = 1, o.max_queue = 4096, o.prefix_reuse = false, o.draft_vocab = draft_vocab;
  auto sched = Scheduler::Start(*model, o);
  ASSERT_TRUE(sched.ok());
  const int runs = SamplingRuns(1500);
  std::vector<Out> out(runs);
  for (int i = 0; i < runs; ++i) {
    GenerationRequest r;
    // 4 tokens so the first round may draft 2 (a round drafts at most what
    // the request still needs); the first 3 are counted.
    r.prompt = prompt, r.max_tokens = 4, r.stop_at_eos = false, r.sampling = so;
    r.sampling.seed = 5000 + i;
    out[i].Attach(r);
    ASSERT_EQ((*sched)->Submit(std::move(r)).code, SubmitCode::kAccepted);
  }
  std::map<std::vector<int32_t>, int> counts;
  for (int i = 0; i < runs; ++i) {
    out[i].Wait();
    ASSERT_EQ(out[i].tokens.size(), 4u);
    const std::vector<int32_t> first3(out[i].tokens.begin(), out[i].tokens.begin() + 3);
    ASSERT_TRUE(exact.count(first3)) << "sampled a continuation outside the filtered support";
    ++counts[first3];
  }
  int cells = 0;
  const double chi2 = ChiSquare(exact, counts, runs, &cells);
  EXPECT_LT(chi2, 54.1) << "cells=" << cells;  // 99.9th percentile for <= 26 degrees of freedom
  const SpecStats s = (*sched)->Stats().spec;
  EXPECT_GT(s.drafted, 0);
  std::printf("  chi-square %.2f over %d cells (%d runs); %lld/%lld drafts accepted\n", chi2, cells, runs,
              (long long)s.accepted, (long long)s.drafted);
}

TEST(SchedulerSpec, SamplingKeepsTheMainModelsDistribution) { ExpectDistributionKept(LoadGolden("v3_tiny_bf16").get()); }

TEST(SchedulerSpec, SamplingKeepsTheDistributionWhenDraftsAreAccepted) {
  auto m = Model::Load(AgreeingMtp(0.25f, 0.5f, "spec_agree_sampling"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExpectDistributionKept(m->get());
}

// Drafts from the first V/2 ids only: the same greedy tokens (drafts the
// main model would not pick are rejected), fewer accepted than with the
// whole vocabulary, and with sampling still the main model's distribution
// (rejection sampling against the restricted draft distribution).
TEST(SchedulerSpec, DraftVocabularyKeepsOutputs) {
  auto m = Model::Load(AgreeingMtp(0.0f, 0.0f, "spec_agree_draft_vocab"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  const int64_t V = (*m)->config().vocab_size;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 7; ++i) prompts.push_back(Prompt(1 + 5 * i, 10 + i, V));
  const SchedulerStats whole = ExpectGreedyMatches(**m, SpecOpts(2), prompts, 11);
  SchedulerOptions o = SpecOpts(2);
  o.draft_vocab = V / 2;
  const SchedulerStats half = ExpectGreedyMatches(**m, o, prompts, 11);
  EXPECT_GT(half.spec.accepted, 0);
  EXPECT_LT(half.spec.acceptance(), whole.spec.acceptance());
  std::printf("  draft vocabulary %lld of %lld: %.1f%% accepted (whole: %.1f%%)\n", (long long)(V / 2), (long long)V,
              100.0 * half.spec.acceptance(), 100.0 * whole.spec.acceptance());
}

TEST(SchedulerSpec, SamplingWithPenaltiesKeepsTheDistribution) {
  auto m = Model::Load(AgreeingMtp(0.25f, 0.5f, "spec_agree_sampling_penalties"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExpectDistributionKept(m->get(), 0, /*penalties=*/true);
}

TEST(SchedulerSpec, SamplingKeepsTheDistributionWithADraftVocabulary) {
  auto m = Model::Load(AgreeingMtp(0.25f, 0.5f, "spec_agree_sampling_vocab"));
  ASSERT_TRUE(m.ok()) << m.status().message();
  ExpectDistributionKept(m->get(), (*m)->config().vocab_size / 2);
}

TEST(SchedulerSpec, ModelWithoutMtpIsAClearError) {
  auto model = LoadGolden("v2lite_tiny_bf16");
  auto sched = Scheduler::Start(*model, SpecOpts(1));
  ASSERT_FALSE(sched.ok());
  EXPECT_NE(sched.status().message().find("no MTP layer"), std::string::npos) << sched.status().message();
  auto bad = Scheduler::Start(*LoadGolden("v3_tiny_bf16"), SpecOpts(17));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("draft-tokens"), std::string::npos);
  SchedulerOptions too_many = SpecOpts(1);
  too_many.draft_vocab = 385;
  auto vocab = Scheduler::Start(*LoadGolden("v3_tiny_bf16"), too_many);
  ASSERT_FALSE(vocab.ok());
  EXPECT_NE(vocab.status().message().find("--draft-vocab 385 is outside [0, vocab_size 384]"), std::string::npos)
      << vocab.status().message();
}

}  // namespace
}  // namespace dsv3
