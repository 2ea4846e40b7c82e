// Training runs end to end on synthetic Markov-chain data (tests/
// synthetic_data.h; entropy ~1.1 nats against log(64) = 4.16): loss falls
// well below log(vocab) in every precision mode; a resumed run reproduces
// the uninterrupted one exactly; results do not depend on the thread count;
// checkpoints load in the engine (Model::Load and the dsv3 binary) with the
// trainer's logits; bad input stops with an error naming the culprit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "core/parallel.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/model.h"
#include "synthetic_data.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace dsv3::train {
namespace {

namespace fs = std::filesystem;
using testing::TinyConfigJson;
using testing::TinyOptions;

std::string Fresh(const std::string& name) {
  const std::string dir = std::string(DSV3_TEST_TMP) + "/train_loop/" + name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string WriteText(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// A shared synthetic data set and tiny config, written once per process; ctest
// runs each test as its own process, in parallel, so the directory is per process.
struct Setup {
  std::string data, config;
  Setup() {
    const std::string dir = Fresh("shared_" + std::to_string(getpid()));
    data = dir + "/data";
    EXPECT_TRUE(testing::WriteMarkovData(data, 64, 300, 3).ok());
    config = WriteText(dir + "/config.json", TinyConfigJson(TinyOptions{}));
  }
};
const Setup& Shared() {
  static Setup s;
  return s;
}

TrainOptions Base(const std::string& out) {
  TrainOptions o;
  o.model_config = Shared().config, o.data = Shared().data, o.out = out;
  o.steps = 60, o.batch_size = 8, o.seq_len = 32, o.warmup_steps = 10, o.lr = 1e-2;
  o.log_every = 1000, o.eval_windows = 32, o.bias_update_rate = 1e-2;
  return o;
}

Expected<TrainResult> Train(const TrainOptions& o, std::unique_ptr<Trainer>* keep = nullptr) {
  std::FILE* devnull = std::fopen("/dev/null", "w");
  auto t = Trainer::Create(o, devnull);
  if (!t.ok()) {
    std::fclose(devnull);
    return t.status();
  }
  auto r = (*t)->Run();
  std::fclose(devnull);
  if (keep) *keep = std::move(*t);
  return r;
}

// The per-step training losses of a run's train_log.jsonl, by step.
std::map<int64_t, double> StepLosses(const std::string& out) {
  std::map<int64_t, double> m;
  std::ifstream in(out + "/train_log.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) m[j["step"].get<int64_t>()] = j["loss"].get<double>();
  }
  return m;
}

TEST(TrainLoopTest, LossFallsWellBelowLogVocabInEveryPrecision) {
  SetNumThreads(1);
  for (const char* precision : {"fp32", "bf16", "fp8"}) {
    TrainOptions o = Base(Fresh(std::string("precision_") + precision));
    o.precision = precision;
    o.bf16_moments = std::string(precision) == "fp8";  // the recipe's BF16 moments, covered once
    auto r = Train(o);
    ASSERT_TRUE(r.ok()) << r.status().message();
    std::printf("%s: train %.3f val %.3f (log 64 = %.3f) acc %.3f mtp_acc %.3f max_vio %.3f\n", precision,
                r->train_loss, r->val.loss, std::log(64.0), r->val.acc, r->val.mtp_acc[0], r->val.worst_max_vio);
    EXPECT_LT(r->val.loss, 0.6 * std::log(64.0)) << precision;
    ASSERT_EQ(r->val.mtp.size(), 1u);
    EXPECT_LT(r->val.mtp[0], 0.7 * std::log(64.0)) << precision;
    // The chain's most likely successor has probability .55 (the MTP target,
    // two steps ahead, at most .55 * .55 + ...); chance is 1/64.
    EXPECT_GT(r->val.acc, 0.35) << precision;
    EXPECT_GT(r->val.mtp_acc[0], 0.1) << precision;
  }
}

TEST(TrainLoopTest, ResumeReproducesTheUninterruptedRun) {
  SetNumThreads(1);
  TrainOptions whole = Base(Fresh("resume_whole"));
  whole.steps = 24;
  ASSERT_TRUE(Train(whole).ok());
  TrainOptions part = Base(Fresh("resume_part"));
  part.steps = 24, part.stop_at = 11;
  ASSERT_TRUE(Train(part).ok());
  part.stop_at = 0, part.resume = true;
  std::unique_ptr<Trainer> resumed;
  auto r = Train(part, &resumed);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(resumed->start_step(), 11);
  const auto a = StepLosses(whole.out), b = StepLosses(part.out);
  ASSERT_EQ(a.size(), 24u);
  ASSERT_EQ(b.size(), 24u);
  for (const auto& [step, loss] : a) EXPECT_EQ(loss, b.at(step)) << "step " << step;  // bit-identical
  // And the saved weights and moments are identical too.
  auto fa = SafetensorsFile::Open(whole.out + "/optimizer.safetensors");
  auto fb = SafetensorsFile::Open(part.out + "/optimizer.safetensors");
  ASSERT_TRUE(fa.ok() && fb.ok());
  ASSERT_EQ((*fa)->tensors().size(), (*fb)->tensors().size());
  for (const TensorInfo& t : (*fa)->tensors()) {
    const TensorInfo* u = (*fb)->Find(t.name);
    ASSERT_TRUE(u) << t.name;
    EXPECT_EQ(0, std::memcmp(t.data, u->data, t.nbytes)) << t.name;
  }
}

// Op-level threads (grad_accum 1) and parallel micro-batches (grad_accum 3:
// rounds of 2 workers, then 1) give bit-identical runs on 1 and 2 threads.
TEST(TrainLoopTest, SameSeedSameRunOnAnyThreadCountOtherSeedOtherRun) {
  for (int accum : {1, 3}) {
    std::vector<std::map<int64_t, double>> runs;
    for (int threads : {1, 2}) {
      SetNumThreads(threads);
      TrainOptions o = Base(Fresh("threads_" + std::to_string(threads) + "_accum_" + std::to_string(accum)));
      o.steps = 6, o.grad_accum = accum, o.batch_size = accum == 1 ? 8 : 3;
      std::unique_ptr<Trainer> t;
      ASSERT_TRUE(Train(o, &t).ok());
      EXPECT_EQ(t->workers(), accum == 1 ? 1 : threads);
      runs.push_back(StepLosses(o.out));
    }
    EXPECT_EQ(runs[0], runs[1]) << "grad_accum " << accum;
  }
  SetNumThreads(1);
  TrainOptions o = Base(Fresh("other_seed"));
  o.steps = 6, o.seed = 2;
  ASSERT_TRUE(Train(o).ok());
  TrainOptions same = Base(Fresh("same_seed"));
  same.steps = 6;
  ASSERT_TRUE(Train(same).ok());
  EXPECT_NE(StepLosses(o.out), StepLosses(same.out));
}

TEST(TrainLoopTest, BalancingModesMoveTheBiasOnlyWhenAuxFree) {
  SetNumThreads(1);
  for (const char* mode : {"aux-free", "aux-loss", "none"}) {
    TrainOptions o = Base(Fresh(std::string("balance_") + mode));
    o.steps = 6, o.balance = mode;
    std::unique_ptr<Trainer> t;
    auto r = Train(o, &t);
    ASSERT_TRUE(r.ok()) << r.status().message();
    double moved = 0;
    for (const ParamTensor& p : t->params().tensors())
      if (p.role == TensorRole::kRouterBias)
        for (int64_t e = 0; e < p.numel; ++e) moved += std::fabs(p.value[e]);
    if (std::string(mode) == "aux-free") {
      EXPECT_GT(moved, 0.0);
    } else {
      EXPECT_EQ(moved, 0.0) << mode;
    }
  }
}

// max |a - b| / max(1, max |b|) over one row of V logits.
double RowError(const float* a, const float* b, int64_t V) {
  double diff = 0, mx = 1;
  for (int64_t v = 0; v < V; ++v)
    diff = std::max(diff, std::fabs(double(a[v]) - b[v])), mx = std::max(mx, std::fabs(double(b[v])));
  return diff / mx;
}

// A trained checkpoint (F32 and BF16 exports) run by the dsv3 binary gives
// the logits (and MTP logits) the trainer computes from the same file.
TEST(TrainLoopTest, CheckpointRunsInDsv3LogitsWithTheTrainersLogits) {
  SetNumThreads(1);
  for (const char* dtype : {"f32", "bf16"}) {
    TrainOptions o = Base(Fresh(std::string("export_") + dtype));
    o.steps = 12, o.save_dtype = dtype;
    ASSERT_TRUE(Train(o).ok());
    const int64_t B = 2, T = 20;
    auto data = TokenData::Open(o.data, 64);
    ASSERT_TRUE(data.ok());
    std::vector<int32_t> tokens(B * T);
    for (int64_t b = 0; b < B; ++b) (*data)->ValidationWindow(b, B, T, tokens.data() + b * T);
    const std::string in = o.out + "/tokens.safetensors", out = o.out + "/logits.safetensors";
    ASSERT_TRUE(WriteSafetensors(in, {{{"tokens", DType::kI32, {B, T}}, tokens.data()}}).ok());
    const std::string cmd = std::string(DSV3_BINARY) + " -t 1 logits -m " + o.out + " --input " + in + " --output " + out +
                            " --mtp 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    auto file = SafetensorsFile::Open(out);
    ASSERT_TRUE(file.ok()) << file.status().message();
    const auto* engine = reinterpret_cast<const float*>((*file)->Find("logits")->data);
    const auto* engine_mtp = reinterpret_cast<const float*>((*file)->Find("mtp_logits")->data);
    // The trainer on the exported file: T-2 positions (it reads T + D + 1 tokens).
    auto config = LoadConfig(o.out);
    ASSERT_TRUE(config.ok());
    TrainParams params(*config);
    ASSERT_TRUE(params.LoadCheckpoint(o.out).ok());
    ModelOptions mo;
    mo.batch = B, mo.seq = T - 2;
    TrainModel tm(params, mo);
    std::vector<std::vector<float>> logits;
    tm.Step(tokens.data(), false, 1.0f, &logits);
    double main_err = 0, mtp_err = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < T - 2; ++p) {
        main_err = std::max(main_err, RowError(logits[0].data() + (b * (T - 2) + p) * 64, engine + (b * T + p) * 64, 64));
        mtp_err = std::max(mtp_err, RowError(logits[1].data() + (b * (T - 2) + p) * 64,
                                             engine_mtp + (b * (T - 1) + p) * 64, 64));
      }
    std::printf("%s checkpoint: trainer vs dsv3 logits rel err %.2e, MTP %.2e\n", dtype, main_err, mtp_err);
    EXPECT_LE(main_err, 1e-4) << dtype;
    EXPECT_LE(mtp_err, 1e-4) << dtype;
    const std::string run = std::string(DSV3_BINARY) + " -t 1 run -q -m " + o.out + " --prompt-ids \"2 5 9\" -n 8 >/dev/null";
    EXPECT_EQ(std::system(run.c_str()), 0) << run;
  }
}

// How often MTP depth 1 of the checkpoint in `dir` predicts what the main
// model's greedy choice will be (its argmax one position later) on
// validation windows: the first-draft acceptance of greedy speculation.
double DraftAgreement(const std::string& dir) {
  auto config = LoadConfig(dir);
  EXPECT_TRUE(config.ok());
  TrainParams params(*config);
  EXPECT_TRUE(params.LoadCheckpoint(dir).ok());
  ModelOptions mo;
  mo.batch = 8, mo.seq = 30, mo.mtp_targets = MtpTargets::kMainArgmax;
  TrainModel tm(params, mo);
  auto data = TokenData::Open(Shared().data, 64);
  EXPECT_TRUE(data.ok());
  std::vector<int32_t> tokens(mo.batch * tm.window());
  for (int64_t b = 0; b < mo.batch; ++b) (*data)->ValidationWindow(b, mo.batch, tm.window(), tokens.data() + b * tm.window());
  return tm.Step(tokens.data(), false, 1.0f).mtp_acc.at(0);
}

// Every tensor of a's model.safetensors that b also has, byte for byte, split
// into main-model tensors (must be equal) and MTP-layer ones (counted if changed).
void CompareExports(const std::string& a, const std::string& b, int64_t main_layers, int* mtp_changed) {
  auto fa = SafetensorsFile::Open(a + "/model.safetensors");
  auto fb = SafetensorsFile::Open(b + "/model.safetensors");
  ASSERT_TRUE(fa.ok() && fb.ok());
  for (const TensorInfo& t : (*fb)->tensors()) {
    const bool mtp = t.name.rfind("model.layers." + std::to_string(main_layers) + ".", 0) == 0;
    const TensorInfo* u = (*fa)->Find(t.name);
    if (!mtp) {
      ASSERT_TRUE(u) << t.name;
      EXPECT_EQ(0, std::memcmp(t.data, u->data, t.nbytes)) << t.name << " changed although frozen";
    } else if (!u || std::memcmp(t.data, u->data, t.nbytes) != 0) {
      ++*mtp_changed;
    }
  }
}

// --init-from + --trainable mtp + --mtp-targets main / main-probs: the main
// model (its router biases too) stays bit for bit; the MTP layer learns to
// predict the main model's greedy choice, the acceptance speculative
// decoding gets; a model trained without an MTP layer gets a new one.
TEST(TrainLoopTest, MtpSelfDistillationKeepsTheMainModelAndRaisesDraftAgreement) {
  SetNumThreads(1);
  struct Case { int base_depth; const char* targets; };
  for (const Case c : {Case{1, "main"}, Case{1, "main-probs"}, Case{0, "main"}}) {
    const int base_depth = c.base_depth;
    TrainOptions base = Base(Fresh("distill_base_" + std::to_string(base_depth)));
    base.mtp_depth = base_depth;
    ASSERT_TRUE(Train(base).ok());
    TrainOptions o = Base(Fresh(std::string("distill_") + std::to_string(base_depth) + c.targets));
    o.init_from = base.out, o.trainable = "mtp", o.mtp_targets = c.targets, o.steps = 40;
    std::unique_ptr<Trainer> t;
    auto r = Train(o, &t);
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(t->params().NumParams(), [&] {
      int64_t n = 0;
      for (const ParamTensor& p : t->params().tensors())
        if (p.grad && p.name.rfind("model.layers.2.", 0) == 0) n += p.numel;
      return n;
    }()) << "only the MTP layer (model.layers.2) is trainable";
    int changed = 0;
    CompareExports(base.out, o.out, 2, &changed);
    EXPECT_GT(changed, 5);
    const double after = DraftAgreement(o.out);
    // In a Markov chain the main model's choice after token i+1 is a function
    // of token i+1, which the MTP layer reads: it can be learned exactly.
    EXPECT_GT(after, 0.9) << "base depth " << base_depth << ", " << c.targets;
    EXPECT_NEAR(r->val.mtp_acc.at(0), after, 0.1);  // the trainer's own evaluation measures the same
    if (base_depth == 1) {
      const double before = DraftAgreement(base.out);
      std::printf("draft agreement with the main model: %.3f trained on data, %.3f after self-distillation (%s)\n",
                  before, after, c.targets);
      EXPECT_LT(1.0 - after, 0.5 * (1.0 - before)) << "disagreement at least halved";
    }
  }
}

// Runs Trainer::Create + Run and returns the error message ("" on success).
std::string ErrorOf(const TrainOptions& o) {
  auto r = Train(o);
  return r.ok() ? "" : r.status().message();
}

TEST(TrainLoopBadInputTest, MissingEmptyOrMismatchedData) {
  SetNumThreads(1);
  TrainOptions o = Base(Fresh("bad_data"));
  o.data = o.out + "/nowhere";
  EXPECT_NE(ErrorOf(o).find(o.data + ": data directory does not exist"), std::string::npos) << ErrorOf(o);
  const std::string empty = o.out + "/empty";
  ASSERT_TRUE(WriteTokenData(empty, DataInfo{64, 1, "none"}, {}, {}).ok());
  o.data = empty;
  EXPECT_NE(ErrorOf(o).find("'train' split is empty"), std::string::npos) << ErrorOf(o);
  // A tokenizer with more ids than the model config's vocabulary.
  auto docs = testing::MarkovDocuments(64, 50, 1);
  const std::string big = o.out + "/big_vocab";
  ASSERT_TRUE(WriteTokenData(big, DataInfo{100, 1, "other"}, docs.train, docs.validation).ok());
  o.data = big;
  EXPECT_NE(ErrorOf(o).find("vocab_size 100 but the model config has vocab_size 64"), std::string::npos) << ErrorOf(o);
  // An id outside the vocabulary.
  docs.train.documents[0][3] = 64;
  const std::string bad = o.out + "/bad_id";
  ASSERT_TRUE(WriteTokenData(bad, DataInfo{64, 1, "x"}, docs.train, docs.validation).ok());
  o.data = bad;
  EXPECT_NE(ErrorOf(o).find("train-00000.bin: token 3 has id 64"), std::string::npos) << ErrorOf(o);
  // Windows longer than the data.
  o = Base(Fresh("bad_window"));
  o.seq_len = 60, o.model_config = WriteText(o.out + "/config.json", TinyConfigJson(TinyOptions{}));
  const std::string small = o.out + "/small";
  ASSERT_TRUE(WriteTokenData(small, DataInfo{64, 1, "x"}, {{{2, 3, 4}}}, {{{2, 3}}}).ok());
  o.data = small;
  EXPECT_NE(ErrorOf(o).find("has no shard of at least 62 tokens"), std::string::npos) << ErrorOf(o);
}

TEST(TrainLoopBadInputTest, OverwriteAndResumeFromAnotherShape) {
  SetNumThreads(1);
  TrainOptions o = Base(Fresh("bad_resume"));
  o.steps = 2;
  ASSERT_EQ(ErrorOf(o), "");
  EXPECT_NE(ErrorOf(o).find("already holds a training checkpoint; pass --resume"), std::string::npos);
  TinyOptions other;
  other.q_lora = false;  // q_proj instead of q_a/q_b
  o.model_config = WriteText(o.out + "/../other_config.json", TinyConfigJson(other));
  o.resume = true, o.steps = 4;
  EXPECT_NE(ErrorOf(o).find("(a checkpoint of another model)"), std::string::npos) << ErrorOf(o);
  // Same config fields but the state file of another shape (hand-made mismatch).
  o.model_config = Shared().config;
  fs::copy_file(o.out + "/config.json", o.out + "/config.keep");
  TrainOptions small = Base(Fresh("bad_resume_other"));
  TinyOptions three;
  three.layers = 3;
  small.model_config = WriteText(small.out + "/c.json", TinyConfigJson(three));
  small.steps = 1;
  ASSERT_EQ(ErrorOf(small), "");
  fs::copy_file(small.out + "/optimizer.safetensors", o.out + "/optimizer.safetensors",
                fs::copy_options::overwrite_existing);
  EXPECT_NE(ErrorOf(o).find("the checkpoint is of another model shape"), std::string::npos) << ErrorOf(o);
}

// A distillation run stopped and resumed equals the uninterrupted one (the
// frozen set and the targets come from the options, not from the state).
TEST(TrainLoopTest, DistillationResumesBitForBit) {
  SetNumThreads(1);
  TrainOptions base = Base(Fresh("distill_resume_base"));
  base.steps = 12;
  ASSERT_TRUE(Train(base).ok());
  auto distill = [&](const std::string& name) {
    TrainOptions o = Base(Fresh(name));
    o.init_from = base.out, o.trainable = "mtp", o.mtp_targets = "main-probs", o.steps = 16;
    return o;
  };
  TrainOptions whole = distill("distill_resume_whole");
  ASSERT_TRUE(Train(whole).ok());
  TrainOptions part = distill("distill_resume_part");
  part.stop_at = 7;
  ASSERT_TRUE(Train(part).ok());
  part.stop_at = 0, part.resume = true;
  ASSERT_TRUE(Train(part).ok());
  auto mtp_losses = [](const std::string& out) {  // the trained loss, by step
    std::map<int64_t, double> m;
    std::ifstream in(out + "/train_log.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      const auto j = nlohmann::json::parse(line);
      if (j.contains("mtp") && j.contains("loss")) m[j["step"].get<int64_t>()] = j["mtp"][0].get<double>();
    }
    return m;
  };
  const auto a = mtp_losses(whole.out), b = mtp_losses(part.out);
  EXPECT_EQ(a.size(), 16u);
  EXPECT_EQ(a, b);
  int changed = 0;
  CompareExports(whole.out, part.out, 2, &changed);
  EXPECT_EQ(changed, 0) << "MTP tensors differ after resume";
}

TEST(TrainLoopBadInputTest, DistillationFlags) {
  SetNumThreads(1);
  TrainOptions o = Base(Fresh("bad_distill"));
  o.trainable = "mtp";
  EXPECT_NE(ErrorOf(o).find("--trainable mtp needs a trained model to keep: pass --init-from"), std::string::npos)
      << ErrorOf(o);
  o.trainable = "some", o.init_from = o.out;
  EXPECT_NE(ErrorOf(o).find("--trainable must be all or mtp (got 'some')"), std::string::npos) << ErrorOf(o);
  o.trainable = "all", o.mtp_targets = "teacher";
  EXPECT_NE(ErrorOf(o).find("--mtp-targets must be data, main or main-probs"), std::string::npos) << ErrorOf(o);
  o.mtp_targets = "main", o.mtp_depth = 0;
  EXPECT_NE(ErrorOf(o).find("need MTP layers, but --mtp-depth is 0"), std::string::npos) << ErrorOf(o);
  o.mtp_depth = -1, o.init_from = o.out + "/missing";
  EXPECT_NE(ErrorOf(o).find("--init-from: " + o.init_from), std::string::npos) << ErrorOf(o);
  // A checkpoint of another shape names the tensor.
  TrainOptions other = Base(Fresh("bad_distill_other"));
  TinyOptions no_lora;
  no_lora.q_lora = false;  // q_proj instead of q_a/q_b
  other.model_config = WriteText(other.out + "/c.json", TinyConfigJson(no_lora));
  other.steps = 1;
  ASSERT_EQ(ErrorOf(other), "");
  o = Base(Fresh("bad_distill_shape"));
  o.init_from = other.out, o.trainable = "mtp";
  EXPECT_NE(ErrorOf(o).find("--init-from: "), std::string::npos) << ErrorOf(o);
  EXPECT_NE(ErrorOf(o).find("q_a_proj.weight' is missing"), std::string::npos) << ErrorOf(o);
}

TEST(TrainLoopBadInputTest, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  SetNumThreads(1);
  TrainOptions o = Base(Fresh("nan"));
  o.steps = 10, o.stop_at = 4;
  ASSERT_EQ(ErrorOf(o), "");
  o.stop_at = 0, o.resume = true, o.lr = 1e30, o.warmup_steps = 0;
  const std::string err = ErrorOf(o);
  EXPECT_NE(err.find("is not finite; stopping (the last good checkpoint (step 4) is kept in " + o.out + ")"),
            std::string::npos) << err;
  EXPECT_EQ(err.rfind("step ", 0), 0u) << err;
  auto state = SafetensorsFile::Open(o.out + "/optimizer.safetensors");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)->metadata().at("step"), "4");
  EXPECT_TRUE(Model::Load(o.out).ok());
}

}  // namespace
}  // namespace dsv3::train
