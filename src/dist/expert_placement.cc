// Expert placements: contiguous blocks or an expert map file; see
// expert_placement.h.
#include "dist/expert_placement.h"

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace dsv3::dist {

namespace {

Status CheckRanks(int64_t num_experts, int ranks) {
  if (num_experts <= 0)
    return Status::Error("the model has no routed experts to split over " + std::to_string(ranks) + " ranks");
  if (ranks > num_experts)
    return Status::Error(std::to_string(ranks) + " ranks but the model has only " + std::to_string(num_experts) +
                         " routed experts: run at most " + std::to_string(num_experts) + " ranks");
  return Status::Ok();
}

// A non-negative integer, all of `word`.
bool ParseIndex(const std::string& word, int64_t& out) {
  if (word.empty() || word[0] < '0' || word[0] > '9') return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(word.c_str(), &end, 10);
  if (errno || end != word.c_str() + word.size()) return false;
  out = v;
  return true;
}

// One "RANK: e e a-b" line into owner/line_of; `where` is "FILE line N".
Status ParseLine(const std::string& line, const std::string& where, int ranks, std::vector<int32_t>& owner,
                 std::vector<int64_t>& line_of, int64_t line_no) {
  const size_t colon = line.find(':');
  int64_t rank = 0;
  std::istringstream head(line.substr(0, colon == std::string::npos ? 0 : colon));
  std::string rank_word;
  head >> rank_word;
  if (colon == std::string::npos || !ParseIndex(rank_word, rank))
    return Status::Error(where + ": expected 'RANK: EXPERT ...' (e.g. '0: 0-3 8'), got '" + line + "'");
  if (rank >= ranks)
    return Status::Error(where + ": rank " + std::to_string(rank) + " but the job has " + std::to_string(ranks) +
                         " ranks (0.." + std::to_string(ranks - 1) + ")");
  std::string list = line.substr(colon + 1);
  for (char& c : list) c = c == ',' ? ' ' : c;
  std::istringstream words(list);
  const int64_t E = static_cast<int64_t>(owner.size());
  for (std::string w; words >> w;) {
    const size_t dash = w.find('-');
    int64_t a = 0, b = 0;
    const bool ok = dash == std::string::npos ? ParseIndex(w, a) && ParseIndex(w, b)
                                              : ParseIndex(w.substr(0, dash), a) && ParseIndex(w.substr(dash + 1), b);
    if (!ok || b < a) return Status::Error(where + ": '" + w + "' is not an expert index or range A-B");
    if (b >= E)
      return Status::Error(where + ": expert " + std::to_string(b) + " but the model has " + std::to_string(E) +
                           " routed experts (0.." + std::to_string(E - 1) + ")");
    for (int64_t e = a; e <= b; ++e) {
      if (owner[e] >= 0)
        return Status::Error(where + ": expert " + std::to_string(e) + " is owned twice (rank " +
                             std::to_string(owner[e]) + " on line " + std::to_string(line_of[e]) + ", rank " +
                             std::to_string(rank) + " here)");
      owner[e] = static_cast<int32_t>(rank), line_of[e] = line_no;
    }
  }
  return Status::Ok();
}

}  // namespace

std::vector<int32_t> ExpertPlacement::ExpertsOf(int rank) const {
  std::vector<int32_t> out;
  for (int64_t e = 0; e < num_experts(); ++e)
    if (owner[e] == rank) out.push_back(static_cast<int32_t>(e));
  return out;
}

std::vector<uint8_t> ExpertPlacement::Mask(int rank) const {
  std::vector<uint8_t> mask(owner.size());
  for (size_t e = 0; e < owner.size(); ++e) mask[e] = owner[e] == rank;
  return mask;
}

uint64_t ExpertPlacement::Hash() const {
  uint64_t h = 1469598103934665603ull ^ static_cast<uint64_t>(ranks);  // FNV-1a over the owners
  for (int32_t o : owner) h = (h ^ static_cast<uint32_t>(o)) * 1099511628211ull;
  return h;
}

Expected<ExpertPlacement> ContiguousPlacement(int64_t num_experts, int ranks) {
  DSV3_RETURN_IF_ERROR(CheckRanks(num_experts, ranks));
  ExpertPlacement p;
  p.ranks = ranks;
  p.owner.resize(num_experts);
  const int64_t base = num_experts / ranks, extra = num_experts % ranks;
  int64_t e = 0;
  for (int r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < base + (r < extra ? 1 : 0); ++i) p.owner[e++] = r;
  return p;
}

Expected<ExpertPlacement> ParseExpertMap(const std::string& text, const std::string& name, int64_t num_experts,
                                         int ranks) {
  DSV3_RETURN_IF_ERROR(CheckRanks(num_experts, ranks).WithContext(name));
  ExpertPlacement p;
  p.ranks = ranks;
  p.owner.assign(num_experts, -1);
  std::vector<int64_t> line_of(num_experts, 0);
  std::istringstream in(text);
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    DSV3_RETURN_IF_ERROR(ParseLine(line, name + " line " + std::to_string(line_no), ranks, p.owner, line_of, line_no));
  }
  for (int64_t e = 0; e < num_experts; ++e)
    if (p.owner[e] < 0) return Status::Error(name + ": expert " + std::to_string(e) + " is owned by no rank");
  return p;
}

Expected<ExpertPlacement> ReadExpertMap(const std::string& path, int64_t num_experts, int ranks) {
  std::ifstream f(path);
  if (!f) return Status::Error(path + ": cannot open the expert map");
  std::ostringstream text;
  text << f.rdbuf();
  return ParseExpertMap(text.str(), path, num_experts, ranks);
}

}  // namespace dsv3::dist
