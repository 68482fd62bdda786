// PhaseTimer on the CPU: time goes to the phase whose end is stamped, repeated phases add up, the
// gap between steps and the paused time are left out, and a window starts empty after closing.
#include <gtest/gtest.h>

#include <thread>

#include "tests/support/mpi_world.h"
#include "train/phase_timer.h"

namespace hcl::train {
namespace {

void busy_for(std::chrono::milliseconds ms) { std::this_thread::sleep_for(ms); }

TEST(PhaseTimer, AttributesTimeToPhasesAndLeavesOutPauses) {
  HCL_ONLY_AT_RANKS(1);
  PhaseTimer timer(torch::kCPU);
  for (int step = 0; step < 2; ++step) {
    timer.begin_step();
    busy_for(std::chrono::milliseconds(20));
    timer.end_phase(Phase::Data);
    for (int micro = 0; micro < 2; ++micro) {  // gradient accumulation: forward twice per step
      busy_for(std::chrono::milliseconds(10));
      timer.end_phase(Phase::Forward);
    }
    timer.end_phase(Phase::Optimizer);  // an empty phase
    timer.end_step();
    busy_for(std::chrono::milliseconds(30));  // between steps: in the wall time, in no phase
  }
  timer.pause();
  busy_for(std::chrono::milliseconds(1500));
  timer.resume();
  const WindowTiming w = timer.close_window();

  EXPECT_EQ(w.steps, 2);
  // Lower bounds are exact (sleep never returns early); upper bounds are loose (a loaded machine
  // oversleeps) and only guard against attributing another phase or the pause.
  EXPECT_GE(w.device_ms_per_step(Phase::Data), 20.0);
  EXPECT_LT(w.device_ms_per_step(Phase::Data), 20.0 + 1000.0);
  EXPECT_GE(w.device_ms_per_step(Phase::Forward), 20.0);
  EXPECT_LT(w.device_ms_per_step(Phase::Forward), 20.0 + 1000.0);
  EXPECT_LT(w.device_ms_per_step(Phase::Optimizer), 500.0);
  EXPECT_EQ(w.device_ms_per_step(Phase::Backward), 0.0);
  EXPECT_GE(w.host_ms_per_step(), 40.0);
  EXPECT_GE(w.wall_seconds, 2 * 0.070);  // 2 x (20 + 10 + 10 + 30 ms)
  EXPECT_LT(w.wall_seconds, 1.5);        // the 1.5 s pause is not in it
  EXPECT_NEAR(w.seconds_per_step(), w.wall_seconds / 2, 1e-12);

  const WindowTiming empty = timer.close_window();
  EXPECT_EQ(empty.steps, 0);
  EXPECT_EQ(empty.device_ms_per_step(Phase::Data), 0.0);
  EXPECT_EQ(empty.seconds_per_step(), 0.0);
}

TEST(PhaseTimer, RejectsMisuse) {
  HCL_ONLY_AT_RANKS(1);
  PhaseTimer timer(torch::kCPU);
  EXPECT_ANY_THROW(timer.end_phase(Phase::Data));  // no step begun
  EXPECT_ANY_THROW(timer.resume());                // not paused
  timer.pause();
  EXPECT_ANY_THROW(timer.pause());
  EXPECT_ANY_THROW(timer.close_window());
  timer.resume();
  EXPECT_NO_THROW(timer.close_window());
}

TEST(PhaseTimer, PhaseNames) {
  EXPECT_STREQ(to_string(Phase::Data), "data");
  EXPECT_STREQ(to_string(Phase::Optimizer), "optimizer");
}

}  // namespace
}  // namespace hcl::train
