// Counter-based random numbers for training: a stream is fully determined by
// (seed, stream id), so initialisation does not depend on tensor order and
// the data loader can draw the windows of step s without replaying steps
// 0..s-1 (which is what makes a resumed run identical to an uninterrupted one).
#pragma once

#include <cmath>
#include <cstdint>
#include <string_view>

namespace dsv3::train {

// SplitMix64 finaliser: a good 64-bit mix of one word.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// FNV-1a of a string, for naming streams.
inline uint64_t HashString(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}

class Rng {
 public:
  Rng(uint64_t seed, uint64_t stream) : state_(Mix64(seed ^ Mix64(stream))) {}
  uint64_t Next() { return Mix64(state_ += 0x9e3779b97f4a7c15ull); }
  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n), n > 0 (multiply-shift; bias below 2^-40 here).
  uint64_t Below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(Next()) * n) >> 64); }
  // Standard normal (Box-Muller).
  double Normal() {
    const double u1 = 1.0 - Uniform(), u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  uint64_t state_;
};

}  // namespace dsv3::train
