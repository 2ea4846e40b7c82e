// The server's self-protection below the socket level: request-head framing
// checks (negative and malformed Content-Length, smuggling shapes, compressed
// or unbounded bodies), the request-memory charge and budget, the refusal
// responses the connection gate writes itself, the JSON nesting bound on
// request bodies, and the start-up memory estimate and its error messages.
#include <gtest/gtest.h>

#include <string>

#include "server/api.h"
#include "server/connection_gate.h"
#include "server/request_budget.h"
#include "server/request_head.h"
#include "server/startup_memory.h"

namespace dsv3::server {
namespace {

HeadCheck Check(const std::string& head, size_t max_body = 1 << 20) { return CheckRequestHead(head, max_body); }

TEST(RequestHead, FindsTheEndOfTheHeadAcrossPieces) {
  const std::string h = "GET /health HTTP/1.1\r\nHost: x\r\n\r\nBODY";
  EXPECT_EQ(FindHeadEnd(h), h.size() - 4);
  EXPECT_EQ(FindHeadEnd("GET / HTTP/1.1\r\nHost: x\r\n"), std::string_view::npos);
  // Resuming from where the last search stopped still sees a terminator split across reads.
  const std::string split = "GET / HTTP/1.1\r\n\r\n";
  EXPECT_EQ(FindHeadEnd(split, split.size() - 2), split.size());
}

TEST(RequestHead, AcceptsOrdinaryRequests) {
  HeadCheck c = Check("POST /v1/completions HTTP/1.1\r\nHost: x\r\ncontent-length:  42 \r\n\r\n");
  EXPECT_EQ(c.status, 0) << c.message;
  EXPECT_EQ(c.head.method, "POST");
  EXPECT_EQ(c.head.content_length, 42);
  EXPECT_FALSE(c.head.light());
  c = Check("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(c.status, 0);
  EXPECT_TRUE(c.head.light());
  c = Check("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
  EXPECT_EQ(c.status, 0);
  EXPECT_TRUE(c.head.chunked);
  EXPECT_EQ(Check("POST / HTTP/1.1\r\nContent-Encoding: identity\r\nContent-Length: 0\r\n\r\n").status, 0);
  EXPECT_EQ(Check("POST / HTTP/1.1\r\nContent-Length: 7\r\nContent-Length: 7\r\n\r\n").status, 0);
  c = Check("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 7\r\n\r\n");
  EXPECT_EQ(c.status, 0);
  EXPECT_TRUE(c.head.expect_continue);
  EXPECT_FALSE(Check("POST / HTTP/1.1\r\nContent-Length: 7\r\n\r\n").head.expect_continue);
}

TEST(RequestHead, RefusesBadFraming) {
  struct Case {
    const char* head;
    int status;
  } cases[] = {
      {"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400},  // httplib would read 2^64 - 5 and answer 413
      {"POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", 415},
      {"POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 411},
      {"POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400},       // whitespace before the colon
      {"POST / HTTP/1.1\r\nX: a\nContent-Length: 5\r\n\r\n", 400},  // a bare LF hides a header from us
      {"POST / HTTP/1.1\r\n continued\r\n\r\n", 400},
      {"GARBAGE\r\n\r\n", 400},
  };
  for (const Case& c : cases) {
    const HeadCheck r = Check(c.head);
    EXPECT_EQ(r.status, c.status) << c.head;
    EXPECT_FALSE(r.message.empty()) << c.head;
  }
  EXPECT_NE(Check("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n").message.find("Content-Length"), std::string::npos);
}

TEST(RequestHead, SpotsWhatCannotBeHttpEarly) {
  EXPECT_TRUE(PlausibleHeadStart(""));
  EXPECT_TRUE(PlausibleHeadStart("PO"));
  EXPECT_TRUE(PlausibleHeadStart("POST /v1/completions HTTP/1.1\r\nX: \t\xff\r\n"));
  EXPECT_FALSE(PlausibleHeadStart("\x16\x03\x01\x02\x00"));  // a TLS ClientHello
  EXPECT_FALSE(PlausibleHeadStart(" GET"));
  EXPECT_FALSE(PlausibleHeadStart("AVERYLONGMETHODNAMETHATNEVERENDS"));
  EXPECT_FALSE(PlausibleHeadStart(std::string_view("GET /\0 HTTP/1.1", 15)));
}

TEST(RequestHead, ChargesBodiesByTheirParsedSize) {
  RequestHead h;
  h.method = "POST", h.content_length = 1000;
  EXPECT_EQ(RequestCharge(h, 100, 1 << 20, 12), 100 + 12000);
  h.content_length = -1, h.chunked = true;  // unknown size: charged as the largest allowed
  EXPECT_EQ(RequestCharge(h, 100, 1 << 20, 12), 100 + 12 * (1 << 20));
  h.method = "GET", h.chunked = false;
  EXPECT_EQ(RequestCharge(h, 100, 1 << 20, 12), 100);
}

TEST(RequestBudget, BoundsTheBytesInFlight) {
  RequestBudget b(1000);
  EXPECT_TRUE(b.TryReserve(600));
  EXPECT_FALSE(b.TryReserve(401));
  EXPECT_TRUE(b.TryReserve(400));
  EXPECT_EQ(b.reserved(), 1000);
  b.Release(600);
  EXPECT_TRUE(b.TryReserve(500));
  EXPECT_EQ(b.released_total(), 600);
}

TEST(RefusalResponse, IsACompleteOpenAiStyleAnswer) {
  const std::string r = RefusalResponse(503, "busy; retry later", "server_busy", 1, "*");
  EXPECT_EQ(r.rfind("HTTP/1.1 503 Service Unavailable\r\n", 0), 0u) << r;
  EXPECT_NE(r.find("\r\nRetry-After: 1\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nConnection: close\r\n"), std::string::npos);
  EXPECT_NE(r.find("\r\nAccess-Control-Allow-Origin: *\r\n"), std::string::npos);
  const size_t body = r.find("\r\n\r\n") + 4;
  const auto j = nlohmann::json::parse(r.substr(body));
  EXPECT_EQ(j["error"]["type"], "server_error");
  EXPECT_EQ(j["error"]["code"], "server_busy");
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_NE(r.find("Content-Length: " + std::to_string(r.size() - body)), std::string::npos);
  const std::string bad = RefusalResponse(400, "invalid Content-Length", "", 0, "");
  EXPECT_EQ(bad.find("Retry-After"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(bad.substr(bad.find("\r\n\r\n") + 4))["error"]["type"], "invalid_request_error");
}

TEST(ParseRequest, RefusesDeepNestingBeforeParsing) {
  // Deep JSON in an ignored field still fails fast, naming the limit; 100 levels are fine.
  auto nested = [](int depth) {
    return "{\"prompt\": [1], \"user\": " + std::string(depth, '[') + std::string(depth, ']') + "}";
  };
  ApiError e;
  EXPECT_FALSE(ParseRequest(nested(100000), Endpoint::kCompletions, &e).has_value());
  EXPECT_EQ(e.status, 400);
  EXPECT_NE(e.message.find("nested deeper than 128"), std::string::npos) << e.message;
  EXPECT_TRUE(e.param.empty());
  EXPECT_TRUE(ParseRequest(nested(100), Endpoint::kCompletions, &e).has_value()) << e.message;
}

Config TinyConfig() {  // tests/golden/v3_tiny_bf16
  Config c;
  c.vocab_size = 384, c.hidden_size = 256, c.intermediate_size = 384, c.moe_intermediate_size = 128;
  c.num_hidden_layers = 3, c.num_nextn_predict_layers = 1, c.num_attention_heads = 4;
  c.n_shared_experts = 1, c.n_routed_experts = 16, c.num_experts_per_tok = 4;
  c.kv_lora_rank = 64, c.q_lora_rank = 96, c.qk_rope_head_dim = 16, c.qk_nope_head_dim = 32, c.v_head_dim = 32;
  c.max_position_embeddings = 256;
  return c;
}

TEST(StartupMemory, EstimatesTheCacheWorkspaceAndStacks) {
  StartupPlan p{.slots = 4096, .context = 256, .prefill_chunk = 1 << 20, .threads = 4180, .stack_bytes = 8 << 20};
  const StartupMemory m = EstimateStartupMemory(TinyConfig(), p);
  EXPECT_EQ(m.kv_cache, uint64_t{4096} * 4 * 256 * 80 * 4);  // slots x (layers + MTP) x context x row x f32
  EXPECT_EQ(m.batch_tokens, 4096 * 256);                        // capped by what the slots can hold
  EXPECT_GT(m.workspace, uint64_t{20} << 30);  // the 24 GB that OOM-killed start-up (issue: --prefill-chunk 1048576)
  EXPECT_EQ(m.thread_stacks, uint64_t{4180} * (8 << 20));
  p.kv_cache = KvCacheType::kF8E4M3;
  EXPECT_EQ(EstimateStartupMemory(TinyConfig(), p).kv_cache, uint64_t{4096} * 4 * 256 * (80 + 8));
  // The defaults are small.
  const StartupMemory d = EstimateStartupMemory(TinyConfig(), {.slots = 8, .context = 256, .prefill_chunk = 128});
  EXPECT_LT(d.resident(), uint64_t{64} << 20);
}

TEST(StartupMemory, ErrorsNameTheFlagsAndTheMemory) {
  StartupMemory need;
  need.kv_cache = uint64_t{2} << 30, need.workspace = uint64_t{24} << 30, need.batch_tokens = 1 << 20;
  need.thread_stacks = uint64_t{32} << 30;
  MemoryLimits have{.available = uint64_t{20} << 30};
  Status st = CheckStartupMemory(need, have, "--parallel 4096 x --ctx-size 256, --prefill-chunk 1048576");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--prefill-chunk 1048576"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("26.0 GiB"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("20.0 GiB is available (MemAvailable)"), std::string::npos) << st.message();
  have = {.available = uint64_t{64} << 30, .address_limit = uint64_t{4} << 30, .address_used = uint64_t{1} << 29};
  st = CheckStartupMemory(need, have, "--parallel 4096");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("address-space limit"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("leaves 3.5 GiB"), std::string::npos) << st.message();
  EXPECT_TRUE(CheckStartupMemory(need, {.available = uint64_t{64} << 30}, "x").ok());
  EXPECT_TRUE(CheckStartupMemory(need, {}, "x").ok());  // nothing known: no refusal
}

}  // namespace
}  // namespace dsv3::server
