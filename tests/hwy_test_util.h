// Test helper for SIMD kernels: runs a test body once per Highway target
// compiled in and supported by this CPU, so each kernel is checked on every
// instruction set it may dispatch to, not only the best one.
#pragma once

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cstdint>

namespace dsv3 {

// Runs body once per supported Highway target, restoring the default after.
template <class Fn>
void ForEachTarget(const Fn& body) {
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    body();
  }
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace dsv3
