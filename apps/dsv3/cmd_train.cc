// `dsv3 train`: pre-trains a DeepSeek-V3-architecture model on token data
// with the DeepSeek-V3 recipe (MTP loss, aux-loss-free balancing, FP8 or
// BF16 GEMM numerics, AdamW). Every option is a flag and a key of the
// optional --config JSON file (flags win); see src/train/options.h and
// docs/training.md. Progress lines go to stdout, ending with
// `final step=N train_loss=X val_loss=Y max_vio=Z`. SIGINT/SIGTERM while a
// checkpoint is being written remove its temporary files before the process
// dies of the signal (each checkpoint file is whole: old or new). Under
// mpirun with several ranks the run is data-parallel (docs/training.md).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "apps/dsv3/commands.h"
#include "dist/comm_failure.h"
#include "io/temp_file.h"
#include "train/trainer.h"

namespace dsv3::cli {

namespace {

// Under mpirun, when a rank dies the others are ended by signals from
// mpirun: each surviving rank then says which step it was in and which
// checkpoint is kept. The note is formatted before each step into the idle
// one of two buffers (a handler never reads a half-written one) and written
// with write(2), the only output a handler may do.
char g_note[2][320];
std::atomic<int> g_note_at{-1};
struct sigaction g_next_term {};

void NoteOnSignal(int sig) {
  const int at = g_note_at.exchange(-1);  // once, whichever way the process ends
  if (at >= 0) (void)!::write(2, g_note[at], std::strlen(g_note[at]));
  ::sigaction(sig, &g_next_term, nullptr);  // then what was installed before (temporary files, then death)
  ::raise(sig);
}

// Open MPI may also end a rank itself (exit() or abort() from its transport
// when a peer hangs up): the note is written then too, unless the run
// ended on its own (g_note_at is -1 again).
void NoteAtExit() {
  const int at = g_note_at.exchange(-1);
  if (at >= 0) (void)!::write(2, g_note[at], std::strlen(g_note[at]));
}
struct sigaction g_next_abort {};
void NoteOnAbort(int sig) {
  NoteAtExit();
  ::sigaction(sig, &g_next_abort, nullptr);
  ::raise(sig);
}

void NoteSteps(train::Trainer& trainer, const Common& common, const std::string& out) {
  struct sigaction sa {};
  sa.sa_handler = NoteOnSignal;
  ::sigaction(SIGTERM, &sa, &g_next_term);
  sa.sa_handler = NoteOnAbort;
  ::sigaction(SIGABRT, &sa, &g_next_abort);
  std::atexit(NoteAtExit);
  // A rank may learn of a dead peer from its own transport (TCP sees the
  // connection drop, a write to it would raise SIGPIPE) before mpirun has
  // noticed the death: it waits for mpirun's SIGTERM (so mpirun names the
  // rank that died, not this one) and ends itself after 2 s if none comes;
  // either way with the note.
  ::signal(SIGPIPE, SIG_IGN);
  dist::CatchCommFailures([](const std::string&) {
    ::sleep(2);
    ::raise(SIGTERM);
  });
  trainer.set_progress([rank = common.rank(), out](int64_t step, int64_t saved) {
    const int next = g_note_at.load() == 0 ? 1 : 0;
    const std::string kept = saved >= 0 ? "the checkpoint of step " + std::to_string(saved) + " is kept in " + out +
                                              "; continue with --resume"
                                        : "no checkpoint had been saved";
    std::snprintf(g_note[next], sizeof(g_note[next]), "dsv3: error: rank %d: stopped by the job during step %lld (%s)\n",
                  rank, (long long)step, kept.c_str());
    g_note_at.store(next);
  });
}

struct TrainFlags {
  std::string config_file;
  std::vector<std::string> text;     // one per option field
  std::vector<CLI::Option*> option;  // to see which flags were given
  std::vector<bool> flag;            // bool fields
};

int Train(const TrainFlags& f, Common& common) {
  train::TrainOptions o;
  if (!f.config_file.empty()) {
    Status st = train::ApplyTrainJson(f.config_file, o);
    if (!st.ok()) return Fail(st);  // not agreed: main.cc aborts the job under mpirun
  }
  const auto& fields = train::TrainOptionFields();
  for (size_t i = 0; i < fields.size(); ++i) {
    if (f.option[i]->count() == 0) continue;
    const bool is_bool = std::holds_alternative<bool train::TrainOptions::*>(fields[i].member);
    Status st = train::SetOptionFromText(o, fields[i], is_bool ? (f.flag[i] ? "true" : "false") : f.text[i]);
    if (!st.ok()) return Fail(st);
  }
  // The weight files go through TempFile (cleaned by the handler); the small
  // text files of a checkpoint are written to these names and renamed.
  InstallSignalCleanup();
  for (const char* name : {"config.json.tmp", "tokenizer.json.tmp", "tokenizer_config.json.tmp"})
    SignalCleanup::Register(o.out + "/" + name, false);
  // Under mpirun: data parallel over every rank. Create and Run fail alike
  // on every rank (their errors are agreed), so each rank exits cleanly and
  // rank 0 alone prints the message (it names the failing rank).
  auto trainer = train::Trainer::Create(o, stdout, common.comm);
  Status st = trainer.ok() ? Status::Ok() : trainer.status();
  if (st.ok() && common.distributed()) NoteSteps(**trainer, common, o.out);
  if (st.ok()) {
    auto result = (*trainer)->Run();
    if (!result.ok()) st = result.status();
  }
  g_note_at.store(-1);  // the run ended by itself: nothing to note at exit
  if (st.ok()) return 0;
  common.error_agreed = common.distributed();
  if (common.rank() > 0) return 1;
  return Fail(st);
}

}  // namespace

void RegisterTrain(CLI::App& app, Common& common) {
  auto f = std::make_shared<TrainFlags>();
  CLI::App* cmd = app.add_subcommand("train", "pre-train a model on token data (MTP, aux-loss-free MoE, FP8/BF16)");
  cmd->add_option("--config", f->config_file, "training options as a JSON object (flags override it)");
  const auto& fields = train::TrainOptionFields();
  f->text.resize(fields.size());
  f->flag.resize(fields.size());
  for (size_t i = 0; i < fields.size(); ++i) {
    if (std::holds_alternative<bool train::TrainOptions::*>(fields[i].member)) {
      f->option.push_back(cmd->add_flag_callback(train::FlagName(fields[i]), [f, i] { f->flag[i] = true; },
                                                 fields[i].help));
    } else {
      const char* type = std::holds_alternative<int64_t train::TrainOptions::*>(fields[i].member)  ? "INT"
                         : std::holds_alternative<double train::TrainOptions::*>(fields[i].member) ? "FLOAT"
                                                                                                   : "TEXT";
      f->option.push_back(cmd->add_option(train::FlagName(fields[i]), f->text[i], fields[i].help)
                              ->type_name(type)
                              ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast));  // the last one wins
    }
  }
  cmd->callback([f, &common] {
    common.Apply();
    common.exit_code = Train(*f, common);
  });
}

}  // namespace dsv3::cli
