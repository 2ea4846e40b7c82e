// `dsv3 serve`: load a checkpoint and serve it over an OpenAI-compatible HTTP
// API with continuous batching (src/server, src/runtime/scheduler.h). SIGINT
// or SIGTERM shuts down gracefully (running requests get --shutdown-grace
// seconds, then are cancelled; every stream gets a final event); a second
// signal cancels at once.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "apps/dsv3/commands.h"
#include "apps/dsv3/text_output.h"
#include "runtime/scheduler.h"
#include "server/http_server.h"
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
};

std::string BaseName(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

int Serve(ServeOptions o, const Common& common) {
  // Every thread created from here on inherits this mask; one thread waits for the signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that vanished is a failed write, not a dead server

  LoadOptions lo{.verbose = !o.quiet};
  lo.kv_cache = o.kv_cache == "fp8" ? KvCacheType::kF8E4M3 : KvCacheType::kF32;
  auto model = Model::Load(o.model_dir, lo);
  if (!model.ok()) return Fail(model.status());
  o.sched.draft_tokens = o.spec == "none" ? 0 : o.draft_tokens;
  if (o.spec == "mtp" && !(*model)->has_mtp())
    return Fail(Status::Error("--spec mtp: the model has no MTP layer (num_nextn_predict_layers is 0); "
                              "use --spec auto or none"));
  if (o.spec == "auto" && !(*model)->has_mtp()) {
    std::fprintf(stderr, "dsv3: warning: --spec auto: the model has no MTP layer, serving without speculation\n");
    o.sched.draft_tokens = 0;
  }
  auto codec = server::LoadTextCodec(o.tokenizer_dir.empty() ? TokenizerDirOf(o.model_dir) : o.tokenizer_dir,
                                     (*model)->config().vocab_size, o.quiet);
  if (!codec.ok()) return Fail(codec.status());
  o.sched.threads = common.threads;
  o.sched.prefix_reuse = !o.no_prefix_cache;
  auto sched = Scheduler::Start(**model, o.sched);
  if (!sched.ok()) return Fail(sched.status().WithContext("--parallel/--ctx-size/--prefill-chunk/--spec"));
  if (o.http.model_name.empty()) o.http.model_name = BaseName(o.model_dir);
  o.http.web_ui = !o.no_web;
  o.http.log_requests = !o.quiet;
  server::HttpServer http(**sched, **codec, o.http);
  if (Status st = http.Bind(); !st.ok()) return Fail(st.WithContext("--host/--port"));
  const SchedulerStats s = (*sched)->Stats();
  std::printf("dsv3 serve: listening on http://%s:%d (model '%s', %lld sequences x %lld tokens, KV cache %.1f MiB, "
              "text: %s, speculation: %s)\n",
              o.http.host.c_str(), http.port(), o.http.model_name.c_str(), static_cast<long long>(s.slots),
              static_cast<long long>(s.context), s.kv_cache_bytes / 1048576.0, (*codec)->Describe().c_str(),
              s.draft_tokens ? ("MTP, " + std::to_string(s.draft_tokens) + " draft token(s)").c_str() : "off");
  std::fflush(stdout);

  std::atomic<bool> done{false};
  std::thread shutdown;
  std::thread waiter([&] {
    for (int count = 0;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (done) return;
      if (count++ == 0) {
        shutdown = std::thread([&] { http.Shutdown(); });
      } else {
        std::fprintf(stderr, "dsv3 serve: second signal, cancelling running requests\n");
        (*sched)->CancelAll();
      }
    }
  });
  http.Serve();
  done = true;
  pthread_kill(waiter.native_handle(), SIGTERM);  // wake the waiter (the signal is blocked, so only sigwait sees it)
  waiter.join();
  if (shutdown.joinable()) shutdown.join();
  if (!o.quiet) std::fprintf(stderr, "dsv3 serve: stopped\n");
  return 0;
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
  cmd->add_option("--api-key", o->http.api_key, "require 'Authorization: Bearer KEY' on every request")
      ->envname("DSV3_API_KEY");
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
  cmd->add_option("--idle-timeout", o->http.idle_timeout_s, "seconds before an idle or stalled connection is dropped")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  cmd->add_option("--shutdown-grace", o->http.shutdown_grace_s, "seconds running requests get on shutdown")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-body", o->http.max_body_bytes, "largest request body in bytes (413 above)")
      ->capture_default_str()->check(CLI::Range(1024, 1 << 30));
  cmd->add_option("--cors-origin", o->http.cors_origin, "send CORS headers allowing this origin (e.g. '*')");
  cmd->add_option("--http-threads", o->http.http_threads, "HTTP worker threads (default: parallel + max-queue + 16)")
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--spec", o->spec, "speculative decoding: none, mtp (the model's MTP layer drafts; error "
                  "without one), auto (mtp when the model has one)")
      ->check(CLI::IsMember({"none", "mtp", "auto"}))->capture_default_str();
  cmd->add_option("--draft-tokens", o->draft_tokens, "draft tokens per sequence and step with --spec")
      ->check(CLI::Range(1, 16))->capture_default_str();
  cmd->add_option("--draft-vocab", o->sched.draft_vocab, "draft only among token ids [0, N) (BPE lists frequent tokens first): a cheaper MTP head; 0 = all")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))->capture_default_str();
  cmd->add_option("--kv-cache", o->kv_cache, "latent KV cache: f32 or fp8 (e4m3 with per-row scales)")
      ->check(CLI::IsMember({"f32", "fp8"}))->capture_default_str();
  cmd->add_flag("--no-web", o->no_web, "do not serve the chat page at /");
  cmd->add_flag("-q,--quiet", o->quiet, "no loading messages or request log");
  cmd->callback([o, &common] {
    common.Apply();
    common.exit_code = Serve(*o, common);
  });
}

}  // namespace dsv3::cli
