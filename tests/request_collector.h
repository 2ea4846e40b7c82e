// A waitable collector of one scheduler request's output for the scheduler
// tests: Attach() installs on_token / on_finish callbacks that record the
// tokens (and events, top logprobs, finish info) under a mutex and wake
// waiters; event indices must arrive in order. SubmitAndWait runs a
// request to its end. stop_after makes on_token ask
// the scheduler to stop at that index.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "runtime/scheduler.h"

namespace dsv3::testing {

struct RequestCollector {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int32_t> tokens;
  std::vector<TokenEvent> events;                 // without their top logprobs (see tops)
  std::vector<std::vector<TokenLogprob>> tops;
  bool done = false;
  FinishInfo info;
  int stop_after = -1;  // on_token returns false at this index

  void Attach(GenerationRequest& r) {
    r.on_token = [this](const TokenEvent& e) {
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_EQ(e.index, static_cast<int64_t>(tokens.size()));
      tokens.push_back(e.token);
      events.push_back(e);
      tops.emplace_back(e.top.begin(), e.top.end());
      events.back().top = {};
      cv.notify_all();
      return e.index != stop_after;
    };
    r.on_finish = [this](const FinishInfo& i) {
      std::lock_guard<std::mutex> lock(mu);
      info = i;
      done = true;
      cv.notify_all();
    };
  }
  // Attach, submit (must be accepted) and wait for the end.
  void SubmitAndWait(Scheduler& scheduler, GenerationRequest r) {
    Attach(r);
    ASSERT_EQ(scheduler.Submit(std::move(r)).code, SubmitCode::kAccepted);
    Wait();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done; }));
  }
  void WaitTokens(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return tokens.size() >= n || done; }));
  }
};

}  // namespace dsv3::testing
