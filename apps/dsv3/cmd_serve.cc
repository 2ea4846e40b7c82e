// `dsv3 serve`: load a checkpoint and serve it over an OpenAI-compatible HTTP
// API with continuous batching (src/server, src/runtime/scheduler.h). SIGINT
// or SIGTERM shuts down gracefully (running requests get --shutdown-grace
// seconds, then are cancelled; every stream gets a final event); a second
// signal cancels at once. Before allocating anything big, start-up checks
// that the KV cache, the forward workspace and the HTTP worker stacks fit in
// the memory and address space the machine allows (server/startup_memory.h);
// an allocation that fails anyway is reported as an error, not a crash.
// What a request leaves unset samples with the checkpoint's
// generation_config.json values over OpenAI's defaults (temperature 1).
// Under mpirun (docs/distributed.md) rank 0 serves and the other ranks replay
// its steps (runtime/step_broadcast.h); a job that fails (a rank dies, mpirun
// ends it) makes rank 0 answer in-flight and new requests with an error and
// exit non-zero.
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <optional>
#include <system_error>
#include <thread>
#include <unistd.h>

#include "apps/dsv3/commands.h"
#include "dist/comm_failure.h"
#include "apps/dsv3/text_output.h"
#include "runtime/generation_config.h"
#include "runtime/scheduler.h"
#include "runtime/step_broadcast.h"
#include "server/http_server.h"
#include "server/startup_memory.h"
#include "server/text_codec.h"

namespace dsv3::cli {

namespace {

struct ServeOptions {
  std::string model_dir = DefaultModelDir(), tokenizer_dir;
  server::ServerOptions http;
  SchedulerOptions sched;
  bool no_prefix_cache = false, no_web = false, quiet = false;
  std::string spec = "none";  // none | mtp | auto
  int draft_tokens = 1;
  std::string kv_cache = "f32";
  std::string attention = "data";  // under mpirun: data (each rank its own slots) | replicated
};

std::string BaseName(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

// An empty key would silently turn authentication off: refuse it. (CLI11
// ignores an empty environment variable, so that case is checked here.)
Status CheckApiKey(const ServeOptions& o, bool flag_given) {
  if (flag_given && o.http.api_key.empty()) return Status::Error("--api-key is empty (omit it to serve without a key)");
  const char* env = std::getenv("DSV3_API_KEY");
  if (!flag_given && env != nullptr && *env == '\0')
    return Status::Error("DSV3_API_KEY is empty (unset it to serve without a key)");
  return Status::Ok();
}

// Connection limits against the open-file limit (raised to the hard limit
// when that helps) and the request-memory bound against one largest request.
Status CheckConnectionLimits(ServeOptions& o) {
  const server::ConnectionLimits l = server::LimitsFor(o.http, o.sched.max_sequences, o.sched.max_queue);
  const int64_t largest = server::RequestCharge({.method = "POST", .content_length = 0, .chunked = true},
                                                l.max_head_bytes, l.max_body_bytes, l.body_memory_factor);
  if (o.http.max_request_memory < largest)
    return Status::Error("--max-request-memory " + std::to_string(o.http.max_request_memory) +
                         " is below what one --max-body request is charged (" + std::to_string(largest) +
                         " bytes: the body x " + std::to_string(static_cast<int>(l.body_memory_factor)) +
                         " for its parsed form); raise it or lower --max-body");
  constexpr rlim_t kReserve = 128;  // model files, the listener, the gate's eventfd, logs
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) != 0) return Status::Ok();
  const rlim_t want = static_cast<rlim_t>(o.http.max_connections) + kReserve;
  if (r.rlim_cur < want) {
    r.rlim_cur = std::min(want, r.rlim_max);
    setrlimit(RLIMIT_NOFILE, &r);
    getrlimit(RLIMIT_NOFILE, &r);
  }
  if (r.rlim_cur < want) {
    const int fit = r.rlim_cur > kReserve ? static_cast<int>(r.rlim_cur - kReserve) : 1;
    if (!o.quiet)
      std::fprintf(stderr, "dsv3: warning: --max-connections %d lowered to %d (open-file limit %llu)\n",
                   o.http.max_connections, fit, static_cast<unsigned long long>(r.rlim_cur));
    o.http.max_connections = fit;
  }
  return Status::Ok();
}

// The KV cache, warm-up workspace and worker stacks against MemAvailable and
// RLIMIT_AS, before Scheduler::Start allocates them.
Status CheckStartupMemory(const ServeOptions& o, const Model& model) {
  const Config& c = model.config();
  const int64_t context = o.sched.context > 0 ? o.sched.context : DefaultContext(model);
  if (context > c.max_position_embeddings) return Status::Ok();  // Scheduler::Start names that error
  const server::ConnectionLimits l = server::LimitsFor(o.http, o.sched.max_sequences, o.sched.max_queue);
  server::StartupPlan plan{.slots = o.sched.max_sequences, .context = context, .prefill_chunk = o.sched.prefill_chunk,
                           .draft_tokens = o.sched.draft_tokens, .kv_cache = model.options().kv_cache,
                           .threads = l.worker_threads + l.light_threads, .stack_bytes = l.worker_stack_bytes};
  const std::string flags = "--parallel " + std::to_string(plan.slots) + " x --ctx-size " + std::to_string(context) +
                            ", --prefill-chunk " + std::to_string(plan.prefill_chunk) +
                            (plan.draft_tokens ? ", --draft-tokens " + std::to_string(plan.draft_tokens) : "") +
                            ", " + std::to_string(plan.threads) + " HTTP threads (--http-threads, --max-queue)";
  return server::CheckStartupMemory(server::EstimateStartupMemory(c, plan), server::ReadMemoryLimits(), flags);
}

// Under mpirun, SIGCONT is what mpirun sends first when it ends the job (a
// rank died, or mpirun itself was signalled), and SIGUSR1 what this process
// raises when an MPI call fails (CatchCommFailures): the model cannot run
// any more, so every running request fails now and new ones are refused.
constexpr int kJobFailed = SIGUSR1;

// Open MPI's own threads start before Serve() blocks the signals, so a
// signal can land on one of them: a handler passes it on to the waiter
// thread (which blocks them and takes them with sigwait), or keeps it for
// the waiter when it does not exist yet.
std::atomic<pthread_t> g_waiter{};
std::atomic<bool> g_waiter_ready{false};
volatile sig_atomic_t g_early_signal = 0;

void ForwardSignal(int sig) {
  if (g_waiter_ready.load()) pthread_kill(g_waiter.load(), sig);
  else g_early_signal = sig;
}

void ForwardSignalsFromMpiThreads(const sigset_t& signals) {
  struct sigaction sa {};
  sa.sa_handler = ForwardSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGCONT, SIGUSR1})
    if (sigismember(&signals, sig)) sigaction(sig, &sa, nullptr);
}

// The next signal for the waiter thread: one kept before it started, or sigwait's.
int NextSignal(const sigset_t& signals) {
  if (g_early_signal != 0) {
    const int sig = g_early_signal;
    g_early_signal = 0;
    return sig;
  }
  int sig = 0;
  return sigwait(&signals, &sig) == 0 ? sig : 0;
}

void FailJob(server::HttpServer& http, Scheduler& sched, StepLeader& leader, std::thread& shutdown) {
  leader.Fail("the expert-parallel job failed: mpirun is ending it (a rank died, or mpirun was signalled)");
  const std::string why = leader.failure();
  std::fprintf(stderr, "dsv3: error: %s\n", why.c_str());
  sched.BeginDrain(why);  // running requests fail at their next step (the forward refuses)
  if (!shutdown.joinable()) shutdown = std::thread([&] { http.Shutdown(); });
}

// Serves until the first SIGINT/SIGTERM has drained the server; a second
// one cancels the running requests.
void ServeUntilSignalled(server::HttpServer& http, Scheduler& sched, const sigset_t& signals, StepLeader* leader) {
  std::atomic<bool> done{false};
  std::thread shutdown;
  std::thread waiter([&] {
    g_waiter = pthread_self();
    g_waiter_ready = true;
    for (int count = 0;;) {
      const int sig = NextSignal(signals);
      if (sig == 0) continue;
      if (done) return;
      if (leader && (sig == SIGCONT || sig == kJobFailed)) {
        FailJob(http, sched, *leader, shutdown);
      } else if (leader && leader->failed()) {
        continue;  // mpirun's SIGTERM after its SIGCONT: already failing
      } else if (count++ == 0) {
        if (!shutdown.joinable()) shutdown = std::thread([&] { http.Shutdown(); });
      } else {
        std::fprintf(stderr, "dsv3 serve: second signal, cancelling running requests\n");
        sched.CancelAll();
      }
    }
  });
  http.Serve();
  done = true;
  g_waiter_ready = false;
  pthread_kill(waiter.native_handle(), SIGTERM);  // wake the waiter (the signal is blocked, so only sigwait sees it)
  waiter.join();
  if (shutdown.joinable()) shutdown.join();
}

// What requests leave unset: the checkpoint's generation_config.json over
// the server's base defaults, as vLLM serves them.
Status ApplyGenerationDefaults(ServeOptions& o) {
  DSV3_ASSIGN_OR_RETURN(GenerationConfig generation, LoadGenerationConfig(o.model_dir));
  o.http.sampling_defaults = ApplyGenerationConfig(generation, o.http.sampling_defaults);
  if (generation.found() && !o.quiet)
    std::fprintf(stderr, "dsv3 serve: sampling defaults from %s: %s\n", generation.path.c_str(),
                 generation.Describe().c_str());
  return Status::Ok();
}

int Serve(ServeOptions o, Common& common);

// Serve() with allocation and thread-creation failures during start-up
// reported as errors (what was being done and the flags that size it).
int ServeReportingFailures(ServeOptions o, Common& common) {
  try {
    return Serve(std::move(o), common);
  } catch (const std::bad_alloc&) {
    return Fail(Status::Error("out of memory while starting the server (the KV cache, workspace and HTTP threads "
                              "grow with --parallel, --ctx-size, --prefill-chunk and --http-threads)"));
  } catch (const std::system_error& e) {
    return Fail(Status::Error(std::string("cannot start the server's threads (") + e.what() +
                              "); lower --parallel or --http-threads"));
  }
}

int ServeModel(ServeOptions o, const Common& common, const Model& model, const sigset_t& signals,
               StepLeader* leader);
int ServeRanks(const ServeOptions& o, Common& common, const Model& model, const sigset_t& signals);

int Serve(ServeOptions o, Common& common) {
  // Request bodies (megabytes) and their parsed JSON come and go on many
  // HTTP threads. glibc's default raises its mmap threshold after the first
  // large free, so later large buffers land in per-thread arenas and stay
  // resident after a burst even when trimmed (measured: 44 -> 74 MiB after 30
  // rejected 3.4 MB bodies; 45 MiB with a fixed threshold). Fixed, they are
  // mapped and unmapped with each request.
  mallopt(M_MMAP_THRESHOLD, 256 << 10);
  // Every thread created from here on inherits this mask; one thread waits for the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (common.distributed()) sigaddset(&signals, SIGCONT), sigaddset(&signals, kJobFailed);
  if (common.rank() > 0) o.quiet = true;  // rank 0 speaks for the job
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (common.distributed() && common.rank() == 0) ForwardSignalsFromMpiThreads(signals);
  signal(SIGPIPE, SIG_IGN);  // a client that vanished is a failed write, not a dead server

  // Before loading: an invalid generation_config.json fails fast.
  if (Status st = ApplyGenerationDefaults(o); !st.ok()) return Fail(st);
  LoadOptions lo{.verbose = !o.quiet};
  lo.kv_cache = o.kv_cache == "fp8" ? KvCacheType::kF8E4M3 : KvCacheType::kF32;
  if (common.distributed() && o.attention == "data") o.sched.attention_ranks = common.comm->size();
  auto model = LoadOnRanks(common, o.model_dir, lo);
  if (!model.ok()) return Fail(model.status());  // every rank says why (the ranks agreed on it)
  o.sched.draft_tokens = o.spec == "none" ? 0 : o.draft_tokens;
  if (o.spec == "mtp" && !(*model)->has_mtp())
    return Fail(Status::Error("--spec mtp: the model has no MTP layer (num_nextn_predict_layers is 0); "
                              "use --spec auto or none"));
  if (o.spec == "auto" && !(*model)->has_mtp()) {
    std::fprintf(stderr, "dsv3: warning: --spec auto: the model has no MTP layer, serving without speculation\n");
    o.sched.draft_tokens = 0;
  }
  if (common.distributed()) return ServeRanks(o, common, **model, signals);
  return ServeModel(std::move(o), common, **model, signals, nullptr);
}

// Rank 0 serves on a thread of its own while this (the MPI) thread runs the
// forwards and broadcasts each step; the other ranks replay the steps. Every
// rank exits with rank 0's status.
int ServeRanks(const ServeOptions& o, Common& common, const Model& model, const sigset_t& signals) {
  int code = 1;
  // Data-parallel attention: each rank runs its own slots' tokens; rank 0
  // also needs the hidden rows when MTP drafts from them.
  std::optional<DataParallelForward> dp;
  if (o.sched.attention_ranks > 1)
    dp.emplace(*common.comm, DataParallelOptions{.hidden = o.sched.draft_tokens > 0,
                                                 .micro_batches = common.micro_batches});
  DataParallelForward* dp_ptr = dp ? &*dp : nullptr;
  if (common.rank() > 0) {
    const Status st = RunStepFollower(model, *common.comm, &code, dp_ptr);
    if (!st.ok()) return Fail(st);
    common.error_agreed = true;
    return code;
  }
  StepLeader leader(model, *common.comm, dp_ptr);
  dist::CatchCommFailures([&leader](const std::string& message) {
    leader.Fail("the expert-parallel job failed (" + message + "; a rank died?)");
    kill(getpid(), kJobFailed);
  });
  std::thread service([&] {
    try {
      code = ServeModel(o, common, model, signals, &leader);
    } catch (const std::exception& e) {  // as ServeReportingFailures does on one rank
      code = Fail(Status::Error(std::string("the server stopped: ") + e.what()));
    }
    if (leader.failed()) {  // the MPI thread may be stuck in an exchange for good: no MPI_Finalize
      std::fprintf(stderr, "dsv3 serve: every request answered; exiting with status 1 (%s)\n", leader.failure().c_str());
      std::fflush(stdout);
      std::fflush(stderr);
      _exit(1);
    }
    leader.Stop(code);
  });
  leader.Run();
  service.join();
  common.error_agreed = true;  // the followers exit with the same code
  return code;
}

int ServeModel(ServeOptions o, const Common& common, const Model& model, const sigset_t& signals,
               StepLeader* leader) {
  auto codec = server::LoadTextCodec(o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir,
                                     model.config().vocab_size, o.quiet);
  if (!codec.ok()) return Fail(codec.status());
  o.sched.threads = common.threads;
  o.sched.prefix_reuse = !o.no_prefix_cache;
  if (Status st = CheckConnectionLimits(o); !st.ok()) return Fail(st);
  if (Status st = CheckStartupMemory(o, model); !st.ok()) return Fail(st);
  auto sched = Scheduler::Start(model, o.sched, leader);
  if (!sched.ok()) return Fail(sched.status().WithContext("--parallel/--ctx-size/--prefill-chunk/--spec"));
  if (o.http.model_name.empty()) o.http.model_name = BaseName(o.model_dir);
  o.http.web_ui = !o.no_web;
  o.http.log_requests = !o.quiet;
  server::HttpServer http(**sched, **codec, o.http);
  if (Status st = http.Bind(); !st.ok()) return Fail(st.WithContext("--host/--port"));
  const SchedulerStats s = (*sched)->Stats();
  std::printf("dsv3 serve: listening on http://%s:%d (model '%s', %lld sequences x %lld tokens, KV cache %.1f MiB, "
              "text: %s, speculation: %s%s)\n",
              o.http.host.c_str(), http.port(), o.http.model_name.c_str(), static_cast<long long>(s.slots),
              static_cast<long long>(s.context), s.kv_cache_bytes / 1048576.0, (*codec)->Describe().c_str(),
              s.draft_tokens ? ("MTP, " + std::to_string(s.draft_tokens) + " draft token(s)").c_str() : "off",
              o.sched.attention_ranks > 1
                  ? (", attention: data-parallel over " + std::to_string(o.sched.attention_ranks) + " ranks").c_str()
                  : "");
  std::fflush(stdout);
  ServeUntilSignalled(http, **sched, signals, leader);
  if (!o.quiet) std::fprintf(stderr, "dsv3 serve: stopped\n");
  return 0;
}

// The flags that bound what clients can make the server hold: connections,
// time, request bytes, threads.
void AddConnectionFlags(CLI::App* cmd, server::ServerOptions& http) {
  cmd->add_option("--idle-timeout", http.idle_timeout_s, "seconds before an idle or stalled connection is dropped")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  cmd->add_option("--shutdown-grace", http.shutdown_grace_s, "seconds running requests get on shutdown")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-body", http.max_body_bytes, "largest request body in bytes (413 above)")
      ->capture_default_str()->check(CLI::Range(1024, 1 << 30));
  cmd->add_option("--header-timeout", http.header_timeout_s, "seconds a request's line and headers may take "
                  "in total (slow clients are dropped)")->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--body-timeout", http.body_timeout_s, "seconds a request body may take in total after its "
                  "headers (408 after)")->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  cmd->add_option("--max-connections", http.max_connections, "open client connections; past it the oldest "
                  "one still sending its headers is closed, or the new one gets 503")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-connections-per-ip", http.max_connections_per_ip, "open connections per client address "
                  "(same policy)")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--max-request-memory", http.max_request_memory, "bytes requests in flight may hold "
                  "(bodies are charged 12x their size for their parsed form); 503 with Retry-After above")
      ->capture_default_str()->check(CLI::Range(int64_t{1} << 20, int64_t{1} << 44));
  cmd->add_option("--cors-origin", http.cors_origin, "send CORS headers allowing this origin (e.g. '*')");
  cmd->add_option("--http-threads", http.http_threads, "HTTP worker threads (default: parallel + max-queue + 16)")
      ->check(CLI::Range(1, 10000));
}

}  // namespace

void RegisterServe(CLI::App& app, Common& common) {
  auto o = std::make_shared<ServeOptions>();
  o->http.model_name.clear();
  CLI::App* cmd = app.add_subcommand("serve", "serve a model over an OpenAI-compatible HTTP API");
  cmd->add_option("-m,--model", o->model_dir, "checkpoint directory (config.json + safetensors; default: the bundled model)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer_dir, "tokenizer directory (default: the model directory; "
                  "without tokenizer.json the server works in token ids)");
  cmd->add_option("--host", o->http.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", o->http.port, "port (0: any free port, printed at start)")
      ->capture_default_str()->check(CLI::Range(0, 65535));
  CLI::Option* api_key = cmd->add_option("--api-key", o->http.api_key, "require 'Authorization: Bearer KEY' on "
                                         "every request (must not be empty)")->envname("DSV3_API_KEY");
  cmd->add_option("--name", o->http.model_name, "model id clients use (default: the directory name)");
  cmd->add_option("--parallel", o->sched.max_sequences, "sequences decoded together (KV-cache slots)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  cmd->add_option("-c,--ctx-size", o->sched.context, "tokens per sequence, prompt + completion "
                  "(default: min(max_position_embeddings, 4096))")->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-queue", o->sched.max_queue, "requests waiting for a slot before 429")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--prefill-chunk", o->sched.prefill_chunk, "prompt tokens per forward pass (bounds stalls)")
      ->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_flag("--no-prefix-cache", o->no_prefix_cache, "do not reuse cached prompt prefixes");
  cmd->add_option("--default-max-tokens", o->http.default_max_tokens, "max_tokens when a request gives none")
      ->capture_default_str()->check(CLI::Range(1, 1 << 30));
  cmd->add_option("--request-timeout", o->http.request_timeout_s, "seconds a generation may run (0: no limit)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  AddConnectionFlags(cmd, o->http);
  cmd->add_option("--spec", o->spec, "speculative decoding: none, mtp (the model's MTP layer drafts; error "
                  "without one), auto (mtp when the model has one)")
      ->check(CLI::IsMember({"none", "mtp", "auto"}))->capture_default_str();
  cmd->add_option("--draft-tokens", o->draft_tokens, "draft tokens per sequence and step with --spec")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--draft-vocab", o->sched.draft_vocab, "draft only among token ids [0, N) (BPE lists frequent tokens first): a cheaper MTP head; 0 = all")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  cmd->add_option("--attention", o->attention, "under mpirun: data (each rank runs attention for its own "
                 "sequences and keeps their cache) or replicated (every rank runs every token)")
      ->check(CLI::IsMember({"data", "replicated"}))
      ->capture_default_str();
  cmd->add_option("--kv-cache", o->kv_cache, "latent KV cache: f32 or fp8 (e4m3 with per-row scales)")
      ->check(CLI::IsMember({"f32", "fp8"}))->capture_default_str();
  cmd->add_flag("--no-web", o->no_web, "do not serve the chat page at /");
  cmd->add_flag("-q,--quiet", o->quiet, "no loading messages or request log");
  cmd->callback([o, &common, api_key] {
    common.Apply();
    if (Status st = CheckApiKey(*o, api_key->count() > 0); !st.ok()) {
      common.exit_code = Fail(st);
      return;
    }
    common.exit_code = ServeReportingFailures(*o, common);
  });
}

}  // namespace dsv3::cli
