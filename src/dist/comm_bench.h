// The all-to-all microbenchmark behind `dsv3 bench --comm`: the time of one
// all-to-all-v in which every rank sends B bytes to every other rank, over a
// range of B, and a fit t(B) = latency + B / bandwidth (weighted least
// squares on relative error, so small and large messages count alike; when
// noise gives a non-positive term, the smallest and largest sizes alone). The
// transport is whatever mpirun chose (e.g. --mca btl self,vader or self,tcp).
#pragma once

#include <cstdint>
#include <vector>

#include "dist/comm.h"

namespace dsv3::dist {

struct AllToAllPoint {
  int64_t bytes = 0;     // sent to each other rank
  double seconds = 0.0;  // per all-to-all: the slowest rank's mean, best of the repetitions
};

struct AllToAllFit {
  std::vector<AllToAllPoint> points;
  double latency_s = 0.0;
  double bytes_per_s = 0.0;  // per rank pair (B / (t - latency))
  double max_rel_error = 0.0;  // of the fit over the points
};

// Every rank calls it. Sizes 8 B .. max_bytes (>= 64), x8 per step; `reps` repetitions.
AllToAllFit MeasureAllToAll(Comm& comm, int64_t max_bytes, int reps);

}  // namespace dsv3::dist
