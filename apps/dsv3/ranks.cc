// The CLI's side of expert parallelism: agreeing on failures across ranks
// and loading a model for this rank with the start-up checks every rank
// must pass (same checkpoint, same expert placement). See commands.h.
#include <algorithm>
#include <cstdio>

#include "apps/dsv3/commands.h"

namespace dsv3::cli {

Status Common::Agree(const Status& local) {
  const Status st = comm ? comm->Agree(local) : local;
  if (!st.ok()) error_agreed = true;
  return st;
}

namespace {

// Every rank sees all ranks' values, so each reaches the same verdict.
Status CheckSame(const std::vector<uint64_t>& values, const std::string& what, const std::string& hint) {
  for (size_t r = 1; r < values.size(); ++r)
    if (values[r] != values[0]) {
      char buf[160];
      std::snprintf(buf, sizeof buf, " (hash %016llx on rank %zu, %016llx on rank 0)",
                    static_cast<unsigned long long>(values[r]), r, static_cast<unsigned long long>(values[0]));
      return Status::Error("rank " + std::to_string(r) + " loaded " + what + " than rank 0" + buf + ": " + hint);
    }
  return Status::Ok();
}

}  // namespace

Expected<std::unique_ptr<Model>> LoadOnRanks(Common& common, const std::string& path, LoadOptions options) {
  options.comm = common.comm;
  options.expert_map = common.expert_map;
  options.overlap_exchange = !common.no_exchange_overlap;
  options.exact_block_activations = options.exact_block_activations || common.exact_activations;
  options.int8_fp8 = options.int8_fp8 || common.int8_fp8;
  options.repack = options.repack || common.repack;
  if (common.attention_form != "auto") {
    auto form = ParseAttentionForm(common.attention_form, "--attention-form");
    DSV3_RETURN_IF_ERROR(form.status());
    options.attention_form = *form;
  }
  if (!common.expert_map.empty() && !common.distributed())
    std::fprintf(stderr, "warning: --expert-map is ignored without mpirun -np N > 1\n");
  auto model = Model::Load(path, options);
  DSV3_RETURN_IF_ERROR(common.Agree(model.status()));
  if (!common.distributed()) return model;
  const Model& m = **model;
  Status st = CheckSame(common.comm->AllGather(m.fingerprint()), "a different checkpoint or config.json",
                        "give every rank the same -m");
  const uint64_t placement = m.placement() ? m.placement()->Hash() : 0;
  if (st.ok())
    st = CheckSame(common.comm->AllGather(placement), "a different expert placement",
                   "give every rank the same --expert-map file");
  if (!st.ok()) {  // every rank reached this verdict from the same values
    common.error_agreed = true;
    return st;
  }
  if (options.verbose && common.rank() == 0) {
    const auto& p = *m.placement();
    std::fprintf(stderr, "expert parallel: %d ranks, %lld routed experts per MoE layer (%s)\n", p.ranks,
                 static_cast<long long>(p.num_experts()),
                 common.expert_map.empty() ? "contiguous blocks" : common.expert_map.c_str());
  }
  return model;
}

void PrintExchangeStats(const Common& common, const Model& model) {
  if (!common.distributed() || common.rank() != 0) return;
  const dist::ExchangeStats& s = model.exchange_stats();
  const double layers = static_cast<double>(std::max<int64_t>(s.layers, 1));
  char how[96] = "no overlap: the whole exchange";
  if (!common.no_exchange_overlap)
    std::snprintf(how, sizeof(how), "the shared experts ran %.3f ms per layer during the dispatch",
                  1e3 * s.overlap_seconds / layers);
  std::fprintf(stderr, "expert exchange (rank 0): %.3f s exposed in %lld MoE layers (%.3f ms each; %s), %.1f KB sent "
               "per token per layer\n", s.seconds, static_cast<long long>(s.layers), 1e3 * s.seconds / layers, how,
               static_cast<double>(s.bytes_sent) / 1e3 / static_cast<double>(std::max<int64_t>(s.tokens, 1)));
}

}  // namespace dsv3::cli
