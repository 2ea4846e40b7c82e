// Test tool: an independent float64 forward of a one-layer dense
// DeepSeek-V3 checkpoint at chosen positions of a long sequence, written from
// SPEC.md's math (sections 4.4-4.6) and sharing nothing with the engine but
// the safetensors reader: YaRN frequencies and mscale, adjacent-pair RoPE at
// absolute positions, and MLA in its plain (not absorbed) form, k_nope and v
// expanded per head from the latent. It checks `dsv3 logits` output rows at
// those positions against the golden bound max|diff| <= tol * max(1,
// max|ref|) with the same argmax. Attention for one query costs O(T), so
// positions near 160K are cheap here; the engine's prefill is the slow side.
// Usage: long_context_reference MODEL_DIR TOKENS ENGINE_LOGITS TOL POS...
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "io/safetensors.h"

namespace {

using Vec = std::vector<double>;

struct Dims {
  int64_t d, H, dn, dr, dv, rc, rq, inter, V;
  double eps, softmax_scale, cs_scale;
  Vec freq;  // [dr/2]
};

double YarnM(double s, double m) { return s <= 1.0 ? 1.0 : 0.1 * m * std::log(s) + 1.0; }

Dims ReadDims(const nlohmann::json& c) {
  Dims m{};
  m.d = c["hidden_size"], m.H = c["num_attention_heads"], m.dn = c["qk_nope_head_dim"];
  m.dr = c["qk_rope_head_dim"], m.dv = c["v_head_dim"], m.rc = c["kv_lora_rank"];
  m.rq = c.value("q_lora_rank", 0), m.inter = c["intermediate_size"], m.V = c["vocab_size"];
  m.eps = c["rms_norm_eps"];
  const double base = c["rope_theta"];
  m.softmax_scale = 1.0 / std::sqrt(static_cast<double>(m.dn + m.dr));
  m.cs_scale = 1.0;
  for (int64_t j = 0; j < m.dr / 2; ++j) m.freq.push_back(std::pow(base, -2.0 * j / m.dr));
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
    const auto& r = c["rope_scaling"];
    const double s = r["factor"], L0 = r["original_max_position_embeddings"];
    const double bf = r["beta_fast"], bs = r["beta_slow"];
    auto corr = [&](double n) { return m.dr * std::log(L0 / (2 * M_PI * n)) / (2 * std::log(base)); };
    const double low = std::max(std::floor(corr(bf)), 0.0);
    double high = std::min(std::ceil(corr(bs)), static_cast<double>(m.dr - 1));
    if (low == high) high += 0.001;
    for (int64_t j = 0; j < m.dr / 2; ++j) {
      const double ramp = std::clamp((j - low) / (high - low), 0.0, 1.0);
      m.freq[j] = m.freq[j] * (1 - ramp) + m.freq[j] / s * ramp;
    }
    const double ma = r.value("mscale_all_dim", 0.0), mm = r.value("mscale", 1.0);
    m.softmax_scale *= YarnM(s, ma) * YarnM(s, ma);
    m.cs_scale = YarnM(s, mm) / YarnM(s, ma);
  }
  return m;
}

// A weight [rows, cols] as doubles.
struct Mat {
  int64_t rows = 0, cols = 0;
  Vec w;
  Vec operator*(const Vec& x) const {
    Vec y(rows, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < cols; ++k) y[r] += w[r * cols + k] * x[k];
    return y;
  }
};

Mat Load(const dsv3::SafetensorsFile& f, const std::string& name) {
  const dsv3::TensorInfo* t = f.Find(name);
  if (!t) throw std::runtime_error("missing tensor " + name);
  Mat m;
  m.rows = t->shape[0], m.cols = t->shape.size() > 1 ? t->shape[1] : 1;
  m.w.resize(m.rows * m.cols);
  for (int64_t i = 0; i < m.rows * m.cols; ++i) {
    if (t->dtype == dsv3::DType::kBF16) {
      uint16_t h;
      std::memcpy(&h, t->data + 2 * i, 2);
      const uint32_t bits = static_cast<uint32_t>(h) << 16;
      float v;
      std::memcpy(&v, &bits, 4);
      m.w[i] = v;
    } else if (t->dtype == dsv3::DType::kF32) {
      float v;
      std::memcpy(&v, t->data + 4 * i, 4);
      m.w[i] = v;
    } else {
      throw std::runtime_error(name + ": the reference reads BF16 or F32 weights only");
    }
  }
  return m;
}

Vec RmsNorm(const Vec& x, const Mat& g, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / x.size() + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * g.w[i];
  return y;
}

// Adjacent pairs (2j, 2j+1) rotated by pos * freq_j (SPEC 4.5).
void Rope(const Dims& m, double* x, int64_t pos) {
  for (int64_t j = 0; j < m.dr / 2; ++j) {
    const double a = static_cast<double>(pos) * m.freq[j];
    const double c = std::cos(a) * m.cs_scale, s = std::sin(a) * m.cs_scale;
    const double x0 = x[2 * j], x1 = x[2 * j + 1];
    x[2 * j] = x0 * c - x1 * s, x[2 * j + 1] = x0 * s + x1 * c;
  }
}

struct Layer {
  Mat embed, in_norm, q, q_a, q_a_norm, q_b, kv_a, kv_a_norm, kv_b, o, post_norm, gate, up, down, norm, head;
};

// Per position: the expanded keys k [H, dn+dr] and values v [H, dv].
struct Kv {
  std::vector<Vec> k, v;
};

Kv Keys(const Dims& m, const Layer& L, const std::vector<int32_t>& tok, int64_t T) {
  Kv kv;
  for (int64_t t = 0; t < T; ++t) {
    const Vec xn = RmsNorm(Vec(L.embed.w.begin() + tok[t] * m.d, L.embed.w.begin() + (tok[t] + 1) * m.d), L.in_norm,
                           m.eps);
    Vec a = L.kv_a * xn;  // [rc + dr]
    const Vec c = RmsNorm(Vec(a.begin(), a.begin() + m.rc), L.kv_a_norm, m.eps);
    Rope(m, a.data() + m.rc, t);
    const Vec e = L.kv_b * c;  // [H, dn + dv]
    Vec k(m.H * (m.dn + m.dr)), v(m.H * m.dv);
    for (int64_t h = 0; h < m.H; ++h) {
      std::copy_n(e.begin() + h * (m.dn + m.dv), m.dn, k.begin() + h * (m.dn + m.dr));
      std::copy_n(a.begin() + m.rc, m.dr, k.begin() + h * (m.dn + m.dr) + m.dn);
      std::copy_n(e.begin() + h * (m.dn + m.dv) + m.dn, m.dv, v.begin() + h * m.dv);
    }
    kv.k.push_back(std::move(k)), kv.v.push_back(std::move(v));
  }
  return kv;
}

Vec LogitsAt(const Dims& m, const Layer& L, const std::vector<int32_t>& tok, const Kv& kv, int64_t t) {
  const Vec x(L.embed.w.begin() + tok[t] * m.d, L.embed.w.begin() + (tok[t] + 1) * m.d);
  const Vec xn = RmsNorm(x, L.in_norm, m.eps);
  Vec q = m.rq > 0 ? L.q_b * RmsNorm(L.q_a * xn, L.q_a_norm, m.eps) : L.q * xn;  // [H, dn + dr]
  Vec o(m.H * m.dv, 0.0);
  for (int64_t h = 0; h < m.H; ++h) {
    double* qh = q.data() + h * (m.dn + m.dr);
    Rope(m, qh + m.dn, t);
    Vec s(t + 1);
    double mx = -1e300;
    for (int64_t j = 0; j <= t; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < m.dn + m.dr; ++k) dot += qh[k] * kv.k[j][h * (m.dn + m.dr) + k];
      s[j] = dot * m.softmax_scale, mx = std::max(mx, s[j]);
    }
    double sum = 0;
    for (double& v : s) sum += (v = std::exp(v - mx));
    for (int64_t j = 0; j <= t; ++j)
      for (int64_t k = 0; k < m.dv; ++k) o[h * m.dv + k] += s[j] / sum * kv.v[j][h * m.dv + k];
  }
  Vec h = x;
  const Vec attn = L.o * o;
  for (int64_t i = 0; i < m.d; ++i) h[i] += attn[i];
  const Vec hn = RmsNorm(h, L.post_norm, m.eps);
  Vec g = L.gate * hn;
  const Vec u = L.up * hn;
  for (int64_t i = 0; i < m.inter; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  const Vec mlp = L.down * g;
  for (int64_t i = 0; i < m.d; ++i) h[i] += mlp[i];
  return L.head * RmsNorm(h, L.norm, m.eps);
}

Layer LoadLayer(const dsv3::SafetensorsFile& f, const Dims& m) {
  const std::string p = "model.layers.0.";
  Layer L;
  L.embed = Load(f, "model.embed_tokens.weight"), L.in_norm = Load(f, p + "input_layernorm.weight");
  if (m.rq > 0) {
    L.q_a = Load(f, p + "self_attn.q_a_proj.weight"), L.q_a_norm = Load(f, p + "self_attn.q_a_layernorm.weight");
    L.q_b = Load(f, p + "self_attn.q_b_proj.weight");
  } else {
    L.q = Load(f, p + "self_attn.q_proj.weight");
  }
  L.kv_a = Load(f, p + "self_attn.kv_a_proj_with_mqa.weight");
  L.kv_a_norm = Load(f, p + "self_attn.kv_a_layernorm.weight"), L.kv_b = Load(f, p + "self_attn.kv_b_proj.weight");
  L.o = Load(f, p + "self_attn.o_proj.weight"), L.post_norm = Load(f, p + "post_attention_layernorm.weight");
  L.gate = Load(f, p + "mlp.gate_proj.weight"), L.up = Load(f, p + "mlp.up_proj.weight");
  L.down = Load(f, p + "mlp.down_proj.weight");
  L.norm = Load(f, "model.norm.weight"), L.head = Load(f, "lm_head.weight");
  return L;
}

int Run(int argc, char** argv) {
  const std::string dir = argv[1];
  std::ifstream cfg(dir + "/config.json");
  const nlohmann::json c = nlohmann::json::parse(cfg);
  if (c["num_hidden_layers"] != 1 || c.value("first_k_dense_replace", 0) < 1) {
    std::fprintf(stderr, "%s: the reference runs one dense layer only\n", dir.c_str());
    return 2;
  }
  const Dims m = ReadDims(c);
  auto weights = dsv3::SafetensorsFile::Open(dir + "/model-00001-of-00001.safetensors");
  auto tokens = dsv3::SafetensorsFile::Open(argv[2]);
  auto engine = dsv3::SafetensorsFile::Open(argv[3]);
  if (!weights.ok() || !tokens.ok() || !engine.ok()) {
    std::fprintf(stderr, "cannot open the weights, tokens or engine logits\n");
    return 2;
  }
  const double tol = std::stod(argv[4]);
  const dsv3::TensorInfo* tt = (*tokens)->Find("tokens");
  const dsv3::TensorInfo* et = (*engine)->Find("logits");
  const int64_t T = tt->shape[1];
  std::vector<int32_t> tok(T);
  std::memcpy(tok.data(), tt->data, T * 4);
  const Layer L = LoadLayer(**weights, m);
  int64_t last = 0;
  for (int i = 5; i < argc; ++i) last = std::max<int64_t>(last, std::stoll(argv[i]));
  const Kv kv = Keys(m, L, tok, last + 1);
  const float* got_all = reinterpret_cast<const float*>(et->data);
  int bad = 0;
  for (int i = 5; i < argc; ++i) {
    const int64_t t = std::stoll(argv[i]);
    const Vec want = LogitsAt(m, L, tok, kv, t);
    const float* got = got_all + t * m.V;
    double max_ref = 0, max_diff = 0;
    int64_t arg_want = 0, arg_got = 0;
    for (int64_t v = 0; v < m.V; ++v) {
      max_ref = std::max(max_ref, std::fabs(want[v])), max_diff = std::max(max_diff, std::fabs(got[v] - want[v]));
      if (want[v] > want[arg_want]) arg_want = v;
      if (got[v] > got[arg_got]) arg_got = v;
    }
    const double ratio = max_diff / std::max(1.0, max_ref);
    const bool ok = ratio <= tol && arg_want == arg_got;
    bad += !ok;
    std::printf("position %lld: max|diff|/max(1,max|ref|) = %.3g (bound %.3g), argmax %lld vs %lld%s\n",
                static_cast<long long>(t), ratio, tol, static_cast<long long>(arg_got),
                static_cast<long long>(arg_want), ok ? "" : "  FAIL");
  }
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: long_context_reference MODEL_DIR TOKENS ENGINE_LOGITS TOL POS...\n");
    return 2;
  }
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "long_context_reference: %s\n", e.what());
    return 2;
  }
}
