// Which rank holds which routed expert. The default splits the E routed
// experts into contiguous blocks, one per rank (the first E % N ranks get
// one more); an expert map file names them explicitly, one line per rank:
//
//   # comments and blank lines are ignored
//   0: 0-3 8
//   1: 4 5 6 7
//
// Every expert must have exactly one owner; a rank may own none. The same
// placement applies to every MoE layer (MTP layers included).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv3::dist {

struct ExpertPlacement {
  int ranks = 1;
  std::vector<int32_t> owner;  // [E] rank holding expert e

  int64_t num_experts() const { return static_cast<int64_t>(owner.size()); }
  // Experts of `rank`, ascending.
  std::vector<int32_t> ExpertsOf(int rank) const;
  // [E] 1 where `rank` holds the expert: what a rank loads.
  std::vector<uint8_t> Mask(int rank) const;
  // A hash of the placement, to check that every rank was given the same.
  uint64_t Hash() const;
};

// Contiguous blocks over `ranks`; an error when there are more ranks than
// experts (a rank would hold nothing) or no routed experts.
Expected<ExpertPlacement> ContiguousPlacement(int64_t num_experts, int ranks);
// Reads an expert map; errors name the file and line.
Expected<ExpertPlacement> ReadExpertMap(const std::string& path, int64_t num_experts, int ranks);
// Parses expert-map text; `name` labels errors.
Expected<ExpertPlacement> ParseExpertMap(const std::string& text, const std::string& name, int64_t num_experts,
                                         int ranks);

}  // namespace dsv3::dist
