// Needle-in-a-haystack prompts, greedy answering, grid and heatmap; see niah.h.
#include "runtime/niah.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dsv3 {

namespace {

void AppendFiller(const NiahPieces& p, int64_t count, int64_t& offset, std::vector<int32_t>& out) {
  const int64_t n = static_cast<int64_t>(p.filler.size());
  for (int64_t i = 0; i < count; ++i) out.push_back(p.filler[(offset++) % n]);
}

// Red (0) -> yellow (0.5) -> green (1), the paper figure's palette.
std::string CellColor(double a) {
  const double lo[3] = {215, 48, 39}, mid[3] = {254, 224, 139}, hi[3] = {26, 152, 80};
  const double t = a < 0.5 ? a * 2 : (a - 0.5) * 2;
  const double* from = a < 0.5 ? lo : mid;
  const double* to = a < 0.5 ? mid : hi;
  char buf[16];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", int(std::lround(from[0] + t * (to[0] - from[0]))),
                int(std::lround(from[1] + t * (to[1] - from[1]))), int(std::lround(from[2] + t * (to[2] - from[2]))));
  return buf;
}

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

}  // namespace

int64_t NiahMinLength(const NiahPieces& p) {
  return static_cast<int64_t>(p.prefix.size() + p.needle.size() + p.question.size()) + 1;
}

std::vector<int32_t> NiahPrompt(const NiahPieces& p, int64_t length, double depth_percent, int64_t filler_offset) {
  const int64_t room = length - static_cast<int64_t>(p.prefix.size() + p.needle.size() + p.question.size());
  const int64_t before = std::clamp<int64_t>(std::llround(depth_percent / 100.0 * room), 0, room);
  std::vector<int32_t> out(p.prefix);
  out.reserve(length + p.answer.size());
  AppendFiller(p, before, filler_offset, out);
  out.insert(out.end(), p.needle.begin(), p.needle.end());
  AppendFiller(p, room - before, filler_offset, out);
  out.insert(out.end(), p.question.begin(), p.question.end());
  return out;
}

std::vector<int32_t> NiahEpisode(const NiahPieces& p, int64_t length, double depth_percent, int64_t filler_offset) {
  std::vector<int32_t> out = NiahPrompt(p, length, depth_percent, filler_offset);
  out.insert(out.end(), p.answer.begin(), p.answer.end());
  return out;
}

Expected<std::vector<int32_t>> NiahGreedy(const Model& model, const std::vector<int32_t>& prompt, int64_t max_new,
                                          const std::vector<int32_t>& stop, int64_t chunk) {
  const int64_t n = static_cast<int64_t>(prompt.size()), vocab = model.config().vocab_size;
  if (n == 0) return Status::Error("niah: empty prompt");
  KvCache cache = model.NewCache(1, n + max_new);
  Workspace ws;
  Batch batch;
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {  // prefill; only the last position's logits are needed
    batch.Clear();
    const int64_t c1 = std::min(n, c0 + chunk);
    for (int64_t i = c0; i < c1; ++i) batch.Add(prompt[i], static_cast<int32_t>(i), 0, i + 1 == n);
    DSV3_RETURN_IF_ERROR(model.Forward(batch, cache, ws));
  }
  std::vector<int32_t> out;
  for (int64_t k = 0; k < max_new; ++k) {
    const float* row = ws.logits.data();
    const int32_t next = static_cast<int32_t>(std::max_element(row, row + vocab) - row);
    out.push_back(next);
    if (std::find(stop.begin(), stop.end(), next) != stop.end() || k + 1 == max_new) break;
    batch.Clear();
    batch.Add(next, static_cast<int32_t>(n + k), 0, true);
    DSV3_RETURN_IF_ERROR(model.Forward(batch, cache, ws));
  }
  return out;
}

double NiahGrid::Mean() const {
  double sum = 0;
  for (size_t d = 0; d < depths.size(); ++d)
    for (size_t l = 0; l < lengths.size(); ++l) sum += Accuracy(d, l);
  return depths.empty() || lengths.empty() ? 0.0 : sum / double(depths.size() * lengths.size());
}

std::string NiahTable(const NiahGrid& g) {
  std::string s = "depth\\length";
  char buf[64];
  for (int64_t L : g.lengths) std::snprintf(buf, sizeof(buf), " %7lld", (long long)L), s += buf;
  s += "\n";
  for (size_t d = 0; d < g.depths.size(); ++d) {
    std::snprintf(buf, sizeof(buf), "%11.0f%%", g.depths[d]);
    s += buf;
    for (size_t l = 0; l < g.lengths.size(); ++l) std::snprintf(buf, sizeof(buf), " %6.0f%%", 100 * g.Accuracy(d, l)), s += buf;
    s += "\n";
  }
  return s;
}

std::string NiahSvg(const NiahGrid& g, const std::string& title) {
  const int cw = 56, ch = 26, left = 80, top = 44, bottom = 56, right = 20;
  const int w = std::max(left + cw * static_cast<int>(g.lengths.size()) + right, 7 * static_cast<int>(title.size()) + 20);
  const int h = top + ch * static_cast<int>(g.depths.size()) + bottom;
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                "font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%d\" y=\"20\" font-size=\"14\" text-anchor=\"middle\">%s</text>\n",
                w, h, w, h, w / 2, XmlEscape(title).c_str());
  std::string s = buf;
  for (size_t d = 0; d < g.depths.size(); ++d) {
    const int y = top + ch * static_cast<int>(d);
    std::snprintf(buf, sizeof(buf), "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%g%%</text>\n", left - 6,
                  y + ch / 2 + 4, g.depths[d]);
    s += buf;
    for (size_t l = 0; l < g.lengths.size(); ++l) {
      const int x = left + cw * static_cast<int>(l);
      const double a = g.Accuracy(d, l);
      std::snprintf(buf, sizeof(buf),
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\" stroke=\"white\"/>"
                    "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%.0f</text>\n",
                    x, y, cw, ch, CellColor(a).c_str(), x + cw / 2, y + ch / 2 + 4, 100 * a);
      s += buf;
    }
  }
  const int axis_y = top + ch * static_cast<int>(g.depths.size());
  for (size_t l = 0; l < g.lengths.size(); ++l) {
    std::snprintf(buf, sizeof(buf), "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%lld</text>\n",
                  left + cw * static_cast<int>(l) + cw / 2, axis_y + 16, (long long)g.lengths[l]);
    s += buf;
  }
  std::snprintf(buf, sizeof(buf),
                "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">context length (tokens); cell: %% of %lld passkeys "
                "found</text>\n<text x=\"14\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 14 %d)\">"
                "needle depth</text>\n</svg>\n",
                left + cw * static_cast<int>(g.lengths.size()) / 2, axis_y + 38, (long long)g.trials,
                top + ch * static_cast<int>(g.depths.size()) / 2, top + ch * static_cast<int>(g.depths.size()) / 2);
  return s + buf;
}

std::string NiahPasskey(std::mt19937_64& rng, int digits) {
  std::string key(1, static_cast<char>('1' + rng() % 9));
  for (int i = 1; i < digits; ++i) key += static_cast<char>('0' + rng() % 10);
  return key;
}

}  // namespace dsv3
