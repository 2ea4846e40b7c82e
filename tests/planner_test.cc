// The cluster planner's arithmetic (src/dist/planner.h) against figures
// worked out by hand for a small config: tensor bytes per weight format,
// expected distinct experts, the exchange's bytes per token and layer, KV
// bytes per token, a whole step's projection, and cluster-file validation
// naming the field.
#include "dist/planner.h"

#include <gtest/gtest.h>

namespace dsv3::dist {
namespace {

TEST(PlannerTest, TensorBytesPerFormat) {
  Config c;
  const TensorDesc linear{"model.layers.1.mlp.experts.3.down_proj.weight", {256, 512}, TensorRole::kLinear};
  EXPECT_EQ(ConfigTensorBytes(c, linear, WeightFormat::kBf16), 256u * 512 * 2);
  EXPECT_EQ(ConfigTensorBytes(c, linear, WeightFormat::kFp8), 256u * 512 + 2 * 4 * 4);  // 2x4 F32 block scales
  EXPECT_EQ(ConfigTensorBytes(c, linear, WeightFormat::kQ8_0), 256u * 16 * 34);
  EXPECT_EQ(ConfigTensorBytes(c, linear, WeightFormat::kQ4_K), 256u * 2 * 144);
  const TensorDesc ragged{"x", {10, 1408}, TensorRole::kLinear};  // 1408 = 5.5 Q4_K blocks: rows padded
  EXPECT_EQ(ConfigTensorBytes(c, ragged, WeightFormat::kQ4_K), 10u * 6 * 144);
  EXPECT_EQ(ConfigTensorBytes(c, linear, WeightFormat::kStored), 256u * 512 * 2);  // no quantization_config
  const TensorDesc bias{"b", {8}, TensorRole::kRouterBias};
  EXPECT_EQ(ConfigTensorBytes(c, bias, WeightFormat::kQ4_K), 32u);
  EXPECT_EQ(RoutedExpertOf(linear.name), 3);
  EXPECT_EQ(LayerOf(linear.name), 1);
  EXPECT_EQ(LayerOf("model.embed_tokens.weight"), -1);
}

TEST(PlannerTest, DistinctExpertsAndExchangeBytes) {
  EXPECT_DOUBLE_EQ(DistinctExperts(64, 6, 1), 6.0);
  EXPECT_DOUBLE_EQ(DistinctExperts(8, 2, 2), 8 * (1 - 0.75 * 0.75));  // 3.5
  EXPECT_NEAR(DistinctExperts(256, 8, 1000), 256.0, 1e-9);
  const ExchangeBytes one = ExchangePerTokenLayer(2048, 6, 1);
  EXPECT_EQ(one.total(), 0.0);
  // bench-moe (d 2048, top-6) on 2 ranks: half of 6 float32 rows each way, one row gathered.
  const ExchangeBytes two = ExchangePerTokenLayer(2048, 6, 2);
  EXPECT_DOUBLE_EQ(two.dispatch, 24576.0);
  EXPECT_DOUBLE_EQ(two.combine, 24576.0);
  EXPECT_DOUBLE_EQ(two.gather, 8192.0);
}

TEST(PlannerTest, KvBytesPerToken) {
  Config c;
  c.num_hidden_layers = 3, c.kv_lora_rank = 512, c.qk_rope_head_dim = 64;
  EXPECT_DOUBLE_EQ(*KvBytesPerToken(c, "f32"), 3 * 576 * 4.0);
  EXPECT_DOUBLE_EQ(*KvBytesPerToken(c, "fp8"), 3 * 576 + 3 * 4.0);
  EXPECT_FALSE(KvBytesPerToken(c, "int3").ok());
}

// A small MoE (8 experts, top-2, 2 MoE layers) on one node of 2 ranks, the
// by-hand cases below: config, weight bytes, cluster.
struct HandCase {
  Config c;
  WeightBytes w;
  Cluster cl;
};
HandCase SmallHandCase() {
  HandCase h;
  h.c.hidden_size = 1024, h.c.n_routed_experts = 8, h.c.num_experts_per_tok = 2, h.c.num_hidden_layers = 3;
  h.c.first_k_dense_replace = 1, h.c.vocab_size = 1000;
  h.w.replicated = 1000000, h.w.embedding = 200000, h.w.expert.assign(8, 50000), h.w.expert_main = 400000;
  h.cl.nodes = 1, h.cl.ranks_per_node = 2, h.cl.membw_per_node = 1e9, h.cl.efficiency = 0.5;
  h.cl.shm_bytes_per_s = 1e9, h.cl.shm_latency_s = 1e-6;
  return h;
}

TEST(PlannerTest, StepByHand) {
  auto [c, w, cl] = SmallHandCase();
  cl.memory_per_node = 2.402e6;
  PlanOptions o;
  o.context = 100, o.kv_bytes_per_token = 10, o.batches = {1};
  const Plan p = MakePlan(c, w, cl, o);
  ASSERT_EQ(p.steps.size(), 1u);
  EXPECT_EQ(p.moe_layers, 2);
  EXPECT_EQ(p.routed_max, 200000u);
  const StepPlan& s = p.steps[0];
  EXPECT_DOUBLE_EQ(s.experts_per_layer, 2.0);
  // 800000 non-embedding + 200 (one embedding row) + 2 layers x 2/2 experts x 25000.
  EXPECT_DOUBLE_EQ(s.weight_read, 850200.0);
  EXPECT_DOUBLE_EQ(s.kv_read, 1000.0);
  EXPECT_NEAR(s.compute_s, 851200.0 / 0.25e9, 1e-12);
  // Per layer: counts 1us + 64 B, dispatch and combine 1us + 2048 B, gather 1us + 2048 B, at 1 GB/s.
  EXPECT_NEAR(s.exchange_s, 2 * (1.064e-6 + 2 * 3.048e-6 + 3.048e-6), 1e-12);
  EXPECT_NEAR(s.tok_s_per_seq(), 1 / 3.425216e-3, 1e-6);
  EXPECT_DOUBLE_EQ(s.memory_per_node, 2.402e6);
  EXPECT_TRUE(s.fits);
  cl.memory_per_node = 2.4e6;
  EXPECT_FALSE(MakePlan(c, w, cl, o).steps[0].fits);
  // Two nodes of one rank: link latency and the node's off-node bytes over its link.
  cl.nodes = 2, cl.ranks_per_node = 1, cl.link_bytes_per_s = 1e8, cl.link_latency_s = 5e-6;
  EXPECT_NEAR(CollectiveSeconds(cl, 1000.0), 5e-6 + 1000.0 / 1e8, 1e-15);
}

// Data-parallel attention (serve's mode), the same small model at B = 3 over
// 2 ranks: the busiest rank runs attention, the replicated layers and the
// KV cache of ceil(3/2) = 2 sequences, not 3, and no gather follows.
TEST(PlannerTest, DataParallelAttentionByHand) {
  auto [c, w, cl] = SmallHandCase();
  cl.memory_per_node = 1e12;
  PlanOptions o;
  o.context = 100, o.kv_bytes_per_token = 10, o.batches = {3}, o.data_parallel_attention = true;
  const Plan p = MakePlan(c, w, cl, o);
  const StepPlan& s = p.steps[0];
  EXPECT_DOUBLE_EQ(p.exchange.gather, 0.0);
  EXPECT_DOUBLE_EQ(p.exchange.dispatch, 2 * 4096.0 / 2);
  const double experts = 8 * (1 - 0.75 * 0.75 * 0.75);  // distinct experts of all 3 tokens
  // 800000 non-embedding + 2 embedding rows of 200 + 2 layers x experts/2 x 25000.
  EXPECT_DOUBLE_EQ(s.weight_read, 800400.0 + 2 * experts / 2 * 25000);
  EXPECT_DOUBLE_EQ(s.kv_read, 2 * 100 * 10.0);
  // Per layer: counts 1us + 64 B; dispatch and combine of 2 tokens x 2 rows x 4096 B / 2, no gather.
  EXPECT_NEAR(s.exchange_s, 2 * (1.064e-6 + 2 * (1e-6 + 8192e-9)), 1e-12);
  EXPECT_DOUBLE_EQ(s.memory_per_node, 2 * (1000000.0 + 200000 + 2000));
  // Replicated attention: all 3 sequences' KV, and the gather.
  o.data_parallel_attention = false;
  EXPECT_DOUBLE_EQ(MakePlan(c, w, cl, o).steps[0].kv_read, 3 * 100 * 10.0);
}

// Flops of one decoded token counted by hand from the tensor shapes of a
// small config, and the compute term they add to a step.
TEST(PlannerTest, DecodeFlopsByHand) {
  Config c;
  c.vocab_size = 100, c.hidden_size = 16, c.intermediate_size = 32, c.moe_intermediate_size = 8;
  c.num_hidden_layers = 2, c.first_k_dense_replace = 1, c.num_attention_heads = 2, c.q_lora_rank = 0;
  c.kv_lora_rank = 8, c.qk_rope_head_dim = 4, c.qk_nope_head_dim = 4, c.v_head_dim = 4;
  c.n_routed_experts = 4, c.num_experts_per_tok = 2, c.n_shared_experts = 1, c.n_group = 1, c.topk_group = 1;
  const DecodeFlopsPerToken f = CountDecodeFlops(c);
  // Per layer q_proj 16x16 + kv_a 12x16 + kv_b 16x8 + o_proj 16x8 = 704 weights; the dense
  // MLP 3x32x16; router 4x16; shared expert 3x8x16; head 100x16. Routed: 4 experts x 3x8x16.
  EXPECT_DOUBLE_EQ(f.replicated, 2.0 * (2 * 704 + 1536 + 64 + 384 + 1600));
  EXPECT_DOUBLE_EQ(f.routed_all, 2.0 * 1536);
  EXPECT_DOUBLE_EQ(f.attention_per_row, 2.0 * 2 * 2 * (2 * 8 + 4));
  WeightBytes w;
  w.replicated = 1000, w.expert.assign(4, 100), w.expert_main = 400;
  Cluster cl;
  cl.nodes = 1, cl.ranks_per_node = 2, cl.membw_per_node = 1e9, cl.flops_per_node = 1e9, cl.compute_efficiency = 0.5;
  PlanOptions o;
  o.context = 100, o.batches = {1};
  const StepPlan s = MakePlan(c, w, cl, o).steps[0];
  // B x (replicated + K/E x routed / N + context x attention per row).
  EXPECT_DOUBLE_EQ(s.flops, 9984.0 + 3072.0 * 2 / 4 / 2 + 160.0 * 100);
  EXPECT_NEAR(s.flop_s, s.flops / 0.25e9, 1e-15);
  EXPECT_NEAR(s.compute_s, s.memory_s + s.flop_s, 1e-15);
}

TEST(PlannerTest, ClusterFileNamesTheField) {
  const std::string ok = R"({"nodes": 4, "ranks_per_node": 2, "cores_per_node": 64, "memory_per_node_gb": 512,
    "memory_bandwidth_gbs": 400, "link_bandwidth_gbits": 100, "link_latency_us": 3})";
  auto c = ParseCluster(ok, "c.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->ranks(), 8);
  EXPECT_DOUBLE_EQ(c->link_bytes_per_s, 12.5e9);
  EXPECT_DOUBLE_EQ(c->link_latency_s, 3e-6);
  EXPECT_DOUBLE_EQ(c->memory_per_node, 512e9);
  auto missing = ParseCluster(R"({"nodes": 4})", "c.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), "c.json: field 'ranks_per_node' is missing");
  std::string bad = ok;
  bad.replace(bad.find("100"), 3, "-100");
  auto negative = ParseCluster(bad, "c.json");
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("field 'link_bandwidth_gbits' must be > 0 (got -100)"),
            std::string::npos) << negative.status().message();
  EXPECT_FALSE(ParseCluster(R"({"nodes": 1.5})", "c.json").ok());
  EXPECT_FALSE(ParseCluster(R"({"nodes": "4"})", "c.json").ok());
  EXPECT_FALSE(ParseCluster("[1]", "c.json").ok());
}

}  // namespace
}  // namespace dsv3::dist
