// Continuous batching against the single-sequence reference: many concurrent
// requests (more than there are slots, prompts split over several prefill
// chunks, decode steps mixed with prefills) must produce exactly the tokens
// Generate() produces for each alone, greedy and seeded; prefix reuse (free
// slot and copy from a running one) must not change a token; cancellation,
// stop callbacks, limits, timeouts, queue limits and draining behave as
// documented, and every slot is free again afterwards.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <future>
#include <mutex>

#include "runtime/generate.h"
#include "runtime/scheduler.h"
#include "request_collector.h"

namespace dsv3 {
namespace {

std::unique_ptr<Model> LoadGolden(const std::string& name) {
  auto m = Model::Load(std::string(DSV3_GOLDEN_DIR) + "/" + name);
  EXPECT_TRUE(m.ok()) << m.status().message();
  return std::move(m).value();
}

// Collects one request's output; waitable from the test thread.
using Collector = testing::RequestCollector;

std::vector<int32_t> Reference(const Model& m, const std::vector<int32_t>& prompt, int64_t n, const SamplingOptions& s) {
  GenerateOptions o;
  o.max_new_tokens = n;
  o.sampling = s;
  o.stop_at_eos = false;
  auto out = Generate(m, prompt, o, nullptr);
  EXPECT_TRUE(out.ok()) << out.status().message();
  return *out;
}

GenerationRequest Req(std::vector<int32_t> prompt, int64_t max_tokens, bool stop_at_eos = false) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  r.stop_at_eos = stop_at_eos;
  return r;
}

SchedulerOptions Opts(int64_t max_sequences, int64_t context, int64_t max_queue = 64) {
  SchedulerOptions o;
  o.max_sequences = max_sequences, o.context = context, o.max_queue = max_queue;
  return o;
}

std::vector<int32_t> Prompt(int64_t len, int32_t salt, int64_t vocab) {
  std::vector<int32_t> p(len);
  for (int64_t i = 0; i < len; ++i) p[i] = static_cast<int32_t>((i * 37 + salt * 101 + 7) % vocab);
  return p;
}

void ExpectMatchesReference(const std::string& model_name, bool sampled, bool penalized = false) {
  auto model = LoadGolden(model_name);
  const int64_t V = model->config().vocab_size;
  SchedulerOptions so;
  so.max_sequences = 3, so.prefill_chunk = 7, so.context = 128;
  auto sched = Scheduler::Start(*model, so);
  ASSERT_TRUE(sched.ok()) << sched.status().message();
  const int kRequests = 8;
  std::vector<Collector> out(kRequests);
  std::vector<GenerationRequest> reqs(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    reqs[i].prompt = Prompt(3 + 5 * i, i, V);
    reqs[i].max_tokens = 6 + 3 * (i % 3);
    if (sampled) {
      reqs[i].sampling.temperature = 0.9f, reqs[i].sampling.top_k = 40, reqs[i].sampling.top_p = 0.95f;
      reqs[i].sampling.seed = 11u + i;
    }
    if (penalized) {
      reqs[i].sampling.repetition_penalty = 1.3f, reqs[i].sampling.frequency_penalty = 0.5f;
      reqs[i].sampling.presence_penalty = 0.2f * (i % 3);
      reqs[i].sampling.logit_bias = {{static_cast<int32_t>(i % V), kBanBias}, {5, 1.5f}};
    }
    reqs[i].stop_at_eos = false;
  }
  for (int i = 0; i < kRequests; ++i) {
    GenerationRequest r = reqs[i];
    out[i].Attach(r);
    ASSERT_EQ((*sched)->Submit(std::move(r)).code, SubmitCode::kAccepted);
  }
  for (int i = 0; i < kRequests; ++i) {
    out[i].Wait();
    const auto ref = Reference(*model, reqs[i].prompt, reqs[i].max_tokens, reqs[i].sampling);
    EXPECT_EQ(out[i].tokens, ref) << "request " << i;
    EXPECT_EQ(out[i].info.reason, FinishReason::kLength);
    EXPECT_EQ(out[i].info.completion_tokens, reqs[i].max_tokens);
    EXPECT_EQ(out[i].info.prompt_tokens, static_cast<int64_t>(reqs[i].prompt.size()));
  }
  ASSERT_TRUE((*sched)->WaitIdle(10));
  const SchedulerStats st = (*sched)->Stats();
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.waiting, 0);
  EXPECT_EQ(st.requests_finished, kRequests);
  EXPECT_LE(st.max_batch_tokens_seen, so.max_sequences + so.prefill_chunk);
  EXPECT_GT(st.batch_tokens, st.forward_passes);  // steps really were shared
}

// n choices of one prompt (SubmitGroup): each equals Generate() with its own
// seed, and the prompt is read once; the followers compute only its last token.
TEST(Scheduler, GroupReadsThePromptOnce) {
  auto model = LoadGolden("v3_tiny_bf16");
  const int64_t V = model->config().vocab_size;
  for (int64_t slots : {4, 2, 3}) {  // with 2 slots the third choice waits for one; 3: prefix reuse off
    SchedulerOptions so = Opts(slots, 128);
    so.prefix_reuse = slots != 3;  // off across requests; a group still shares its prompt
    auto sched = Scheduler::Start(*model, so);
    ASSERT_TRUE(sched.ok());
    const std::vector<int32_t> prompt = Prompt(10, 9, V);  // shorter than a plain copy's 16-token minimum
    const int n = 3;
    std::vector<Collector> out(n);
    std::vector<GenerationRequest> reqs(n);
    for (int i = 0; i < n; ++i) {
      reqs[i] = Req(prompt, 12);
      reqs[i].sampling.temperature = 1.0f, reqs[i].sampling.seed = ChoiceSeed(77, i);
      reqs[i].sampling.presence_penalty = 0.5f;
      out[i].Attach(reqs[i]);
    }
    std::vector<GenerationRequest> submitted = reqs;
    std::vector<std::shared_ptr<SequenceHandle>> handles;
    ASSERT_EQ((*sched)->SubmitGroup(std::move(submitted), &handles).code, SubmitCode::kAccepted);
    ASSERT_EQ(handles.size(), 3u);
    for (int i = 0; i < n; ++i) {
      out[i].Wait();
      EXPECT_EQ(out[i].tokens, Reference(*model, prompt, 12, reqs[i].sampling)) << "choice " << i;
    }
    EXPECT_NE(out[0].tokens, out[1].tokens);
    ASSERT_TRUE((*sched)->WaitIdle(10));
    const SchedulerStats st = (*sched)->Stats();
    EXPECT_EQ(st.prompt_tokens, n * 10);
    EXPECT_EQ(st.cached_prompt_tokens, (n - 1) * 9) << slots << " slots";
  }
}

TEST(Scheduler, GroupIsQueuedWhole) {
  auto model = LoadGolden("v3_tiny_bf16");
  auto sched = Scheduler::Start(*model, Opts(1, 64, /*max_queue=*/1));
  ASSERT_TRUE(sched.ok());
  std::vector<GenerationRequest> three(3, Req({1, 2, 3}, 4));
  EXPECT_EQ((*sched)->SubmitGroup(three, nullptr).code, SubmitCode::kQueueFull);  // 1 slot + 1 queued < 3
  std::vector<GenerationRequest> mixed = {Req({1, 2, 3}, 4), Req({1, 2, 4}, 4)};
  EXPECT_EQ((*sched)->SubmitGroup(mixed, nullptr).code, SubmitCode::kInvalid);
  ASSERT_TRUE((*sched)->WaitIdle(10));
  EXPECT_EQ((*sched)->Stats().requests_finished, 0);
}

TEST(Scheduler, GreedyMatchesGenerateV3) { ExpectMatchesReference("v3_tiny_bf16", false); }
TEST(Scheduler, GreedyMatchesGenerateFp8) { ExpectMatchesReference("v3_tiny_fp8", false); }
TEST(Scheduler, GreedyMatchesGenerateV2Lite) { ExpectMatchesReference("v2lite_tiny_bf16", false); }
TEST(Scheduler, SeededSamplingMatchesGenerate) { ExpectMatchesReference("v3_tiny_bf16", true); }
TEST(Scheduler, PenaltiesAndBiasMatchGenerate) {
  ExpectMatchesReference("v3_tiny_bf16", false, true);
  ExpectMatchesReference("v3_tiny_bf16", true, true);
}

TEST(Scheduler, PrefixReuseFromFreeSlotKeepsTokens) {
  auto model = LoadGolden("v3_tiny_bf16");
  const int64_t V = model->config().vocab_size;
  for (bool reuse : {true, false}) {
    SchedulerOptions so;
    so.max_sequences = 2, so.prefill_chunk = 16, so.context = 128, so.prefix_reuse = reuse;
    auto sched = Scheduler::Start(*model, so);
    ASSERT_TRUE(sched.ok());
    const std::vector<int32_t> a = Prompt(40, 1, V);
    std::vector<int32_t> b = a;
    b.push_back(5), b.push_back(9), b.push_back(13);
    for (const auto& prompt : {a, b, a}) {
      Collector c;
      GenerationRequest r;
      r.prompt = prompt, r.max_tokens = 5, r.stop_at_eos = false;
      c.SubmitAndWait(**sched, std::move(r));
      EXPECT_EQ(c.tokens, Reference(*model, prompt, 5, {}));
      if (!reuse) {
        EXPECT_EQ(c.info.cached_prompt_tokens, 0);
      }
    }
    // b reuses all of a; the second a reuses a[0..39) (one token is recomputed for its logits).
    if (reuse) {
      EXPECT_EQ((*sched)->Stats().cached_prompt_tokens, 40 + 39);
    }
  }
}

TEST(Scheduler, PrefixCopiedFromRunningSequence) {
  auto model = LoadGolden("v3_tiny_bf16");
  const int64_t V = model->config().vocab_size;
  SchedulerOptions so;
  so.max_sequences = 2, so.prefill_chunk = 64, so.context = 128;
  auto sched = Scheduler::Start(*model, so);
  ASSERT_TRUE(sched.ok());
  const std::vector<int32_t> shared = Prompt(48, 3, V);
  std::vector<int32_t> p1 = shared, p2 = shared;
  p1.push_back(2), p2.push_back(3), p2.push_back(4);
  Collector c1, c2;
  GenerationRequest r1, r2;
  r1.prompt = p1, r1.max_tokens = 40, r1.stop_at_eos = false;
  r2.prompt = p2, r2.max_tokens = 8, r2.stop_at_eos = false;
  c1.Attach(r1), c2.Attach(r2);
  ASSERT_EQ((*sched)->Submit(std::move(r1)).code, SubmitCode::kAccepted);
  c1.WaitTokens(2);  // p1 is in its slot and decoding
  ASSERT_EQ((*sched)->Submit(std::move(r2)).code, SubmitCode::kAccepted);
  c1.Wait(), c2.Wait();
  EXPECT_EQ(c2.info.cached_prompt_tokens, 48);
  EXPECT_EQ(c1.tokens, Reference(*model, p1, 40, {}));
  EXPECT_EQ(c2.tokens, Reference(*model, p2, 8, {}));
}

TEST(Scheduler, CancelStopLengthAndStopTokens) {
  auto model = LoadGolden("v3_tiny_bf16");
  const int64_t V = model->config().vocab_size;
  auto sched = Scheduler::Start(*model, Opts(2, 200));
  ASSERT_TRUE(sched.ok());
  const auto prompt = Prompt(10, 4, V);
  const auto ref = Reference(*model, prompt, 30, {});
  {  // on_token returning false stops right there
    Collector c;
    c.stop_after = 3;
    c.SubmitAndWait(**sched, Req(prompt, 30));
    EXPECT_EQ(c.info.reason, FinishReason::kStop);
    EXPECT_EQ(c.tokens, std::vector<int32_t>(ref.begin(), ref.begin() + 4));
  }
  {  // a stop token ends the sequence and is reported as such
    Collector c;
    GenerationRequest r = Req(prompt, 30);
    r.stop_token_ids = {ref[5]};
    c.SubmitAndWait(**sched, std::move(r));
    const auto first = std::find(ref.begin(), ref.end(), ref[5]) - ref.begin();
    EXPECT_EQ(c.info.reason, FinishReason::kStop);
    ASSERT_EQ(static_cast<int64_t>(c.tokens.size()), first + 1);
    EXPECT_TRUE(c.events.back().stop_token);
  }
  {  // cancel while generating: ends with kCancelled, slot freed
    Collector c;
    GenerationRequest r = Req(prompt, 150);
    c.Attach(r);
    auto res = (*sched)->Submit(std::move(r));
    ASSERT_EQ(res.code, SubmitCode::kAccepted);
    c.WaitTokens(2);
    res.handle->Cancel();
    c.Wait();
    EXPECT_EQ(c.info.reason, FinishReason::kCancelled);
    EXPECT_LT(c.info.completion_tokens, 150);
  }
  ASSERT_TRUE((*sched)->WaitIdle(10));
  EXPECT_EQ((*sched)->Stats().running, 0);
}

TEST(Scheduler, LogprobsAreTheModelDistribution) {
  auto model = LoadGolden("v3_tiny_bf16");
  const int64_t V = model->config().vocab_size;
  auto sched = Scheduler::Start(*model, Opts(1, 64));
  ASSERT_TRUE(sched.ok());
  Collector c;
  GenerationRequest r = Req(Prompt(6, 2, V), 4);
  r.logprobs = 5;
  c.SubmitAndWait(**sched, std::move(r));
  ASSERT_EQ(c.tops.size(), 4u);
  for (size_t i = 0; i < c.tops.size(); ++i) {
    ASSERT_EQ(c.tops[i].size(), 5u);
    EXPECT_EQ(c.tops[i][0].token, c.tokens[i]);  // greedy picks the most likely
    EXPECT_FLOAT_EQ(c.tops[i][0].logprob, c.events[i].logprob);
    double mass = 0;
    for (size_t k = 0; k < 5; ++k) {
      mass += std::exp(c.tops[i][k].logprob);
      if (k > 0) {
        EXPECT_GE(c.tops[i][k - 1].logprob, c.tops[i][k].logprob);
      }
    }
    EXPECT_LE(mass, 1.0 + 1e-5);
    EXPECT_LE(c.events[i].logprob, 0.0f);
  }
}

TEST(Scheduler, RejectsBadRequestsAndFullQueues) {
  auto model = LoadGolden("v3_tiny_bf16");
  auto sched = Scheduler::Start(*model, Opts(1, 64, 1));
  ASSERT_TRUE(sched.ok());
  auto submit = [&](GenerationRequest r) { return (*sched)->Submit(std::move(r)); };
  EXPECT_EQ(submit(Req({}, 1)).code, SubmitCode::kInvalid);
  EXPECT_NE(submit(Req({1, 384}, 1)).message.find("out of range"), std::string::npos);
  EXPECT_NE(submit(Req({1, 2}, 63)).message.find("context of 64"), std::string::npos);
  EXPECT_EQ(submit(Req({1}, 0)).code, SubmitCode::kInvalid);
  GenerationRequest bad_logprobs = Req({1}, 1), bad_temp = Req({1}, 1);
  bad_logprobs.logprobs = 21, bad_temp.sampling.temperature = -1;
  EXPECT_EQ(submit(bad_logprobs).code, SubmitCode::kInvalid);
  EXPECT_EQ(submit(bad_temp).code, SubmitCode::kInvalid);
  // Hold the scheduler inside the first request's callback: one running, one waiting, one refused.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> entered;
  Collector c2, c3;
  GenerationRequest r1 = Req({1, 2}, 3);
  bool first = true;
  r1.on_token = [&](const TokenEvent&) {
    if (first) first = false, entered.set_value(), released.wait();
    return true;
  };
  ASSERT_EQ(submit(std::move(r1)).code, SubmitCode::kAccepted);
  entered.get_future().wait();
  GenerationRequest r2 = Req({3}, 2), r3 = Req({4}, 2);
  c2.Attach(r2), c3.Attach(r3);
  EXPECT_EQ(submit(std::move(r2)).code, SubmitCode::kAccepted);
  EXPECT_EQ(submit(std::move(r3)).code, SubmitCode::kQueueFull);
  release.set_value();
  c2.Wait();
  EXPECT_EQ(c2.info.reason == FinishReason::kLength || c2.info.reason == FinishReason::kStop, true);
  // Draining refuses new work.
  (*sched)->BeginDrain();
  EXPECT_EQ(submit(Req({1}, 1)).code, SubmitCode::kShuttingDown);
}

TEST(Scheduler, DeadlineEndsWithTimeout) {
  auto model = LoadGolden("v3_tiny_bf16");
  auto sched = Scheduler::Start(*model, Opts(1, 256));
  ASSERT_TRUE(sched.ok());
  Collector c;
  GenerationRequest r = Req({1, 2, 3}, 250);
  r.deadline = MonotonicSeconds() + 0.05;
  c.Attach(r);
  r.on_token = [&, inner = r.on_token](const TokenEvent& e) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // keep it from finishing first
    return inner(e);
  };
  ASSERT_EQ((*sched)->Submit(std::move(r)).code, SubmitCode::kAccepted);
  c.Wait();
  EXPECT_EQ(c.info.reason, FinishReason::kTimeout);
  EXPECT_LT(c.info.completion_tokens, 250);
}

TEST(Scheduler, DestructorCancelsEverything) {
  auto model = LoadGolden("v3_tiny_bf16");
  Collector a, b;
  {
    auto sched = Scheduler::Start(*model, Opts(1, 256));
    ASSERT_TRUE(sched.ok());
    GenerationRequest ra = Req({1, 2}, 250), rb = Req({3}, 5);
    a.Attach(ra), b.Attach(rb);
    ASSERT_EQ((*sched)->Submit(std::move(ra)).code, SubmitCode::kAccepted);
    ASSERT_EQ((*sched)->Submit(std::move(rb)).code, SubmitCode::kAccepted);
    a.WaitTokens(1);
  }
  EXPECT_TRUE(a.done && b.done);
  EXPECT_EQ(a.info.reason, FinishReason::kCancelled);
}

TEST(Scheduler, RejectsBadOptions) {
  auto model = LoadGolden("v3_tiny_bf16");
  EXPECT_NE(Scheduler::Start(*model, Opts(1, 100000)).status().message().find("max_position_embeddings"),
            std::string::npos);
  EXPECT_FALSE(Scheduler::Start(*model, Opts(0, 64)).ok());
  SchedulerOptions o = Opts(1, 64);
  o.prefill_chunk = 0;
  EXPECT_FALSE(Scheduler::Start(*model, o).ok());
}

}  // namespace
}  // namespace dsv3
