// Timing of training steps by phase without synchronising inside a step. On CUDA the end of each
// phase is an event recorded on the current stream, and the events are read only when a window of
// steps is closed (once per log interval); on the CPU, where ops run as they are called, the host
// clock. Throughput is wall time between synchronised window ends, less pauses (kNN, checkpoints),
// and a pause first waits for the device, so queued steps are never counted as paused.
// The trainer and hcl-bench-train both time with this class, so their figures agree.
#pragma once

#include <torch/torch.h>

#include <array>
#include <chrono>
#include <memory>
#include <vector>

namespace hcl::train {

// Graph: a step replayed from a CUDA graph (forward to optimizer in one launch, not split).
enum class Phase : int { Data, Forward, Objective, Backward, Sync, Optimizer, Graph };
inline constexpr int kPhaseCount = 7;
// "data", "forward", "objective", "backward", "sync", "optimizer", "graph"
const char* to_string(Phase phase);

// Stamps on one device's timeline: CUDA events (with timing) on the current stream, or host clock
// readings on the CPU. Slots are numbered from 0 and reused from one window to the next.
class DeviceClock {
 public:
  virtual ~DeviceClock() = default;
  virtual void record(size_t slot) = 0;
  // Waits until every recorded stamp has happened (CUDA: the last one's event).
  virtual void synchronize() = 0;
  // Milliseconds from stamp `from` to stamp `to`; only after synchronize().
  virtual double elapsed_ms(size_t from, size_t to) = 0;
};

// The host clock for the CPU, CUDA events for a CUDA device (train/phase_timer_cuda.cpp; a build
// without CUDA throws hcl::Error for a CUDA device).
std::unique_ptr<DeviceClock> make_device_clock(const torch::Device& device);

// What one window of steps took.
struct WindowTiming {
  int64_t steps = 0;
  double wall_seconds = 0;                       // synchronised end to synchronised end, less pauses
  std::array<double, kPhaseCount> device_ms{};   // per phase, summed over the steps (device time)
  double host_ms = 0;                            // host time inside the steps, summed

  double device_ms_per_step(Phase phase) const;
  double host_ms_per_step() const;
  double seconds_per_step() const;               // wall
};

class PhaseTimer {
 public:
  explicit PhaseTimer(const torch::Device& device);

  // A step: begin_step(), then end_phase(p) after each phase's work is queued (a phase may occur
  // several times in a step, as forward/objective/backward do with gradient accumulation); the
  // time since the previous stamp goes to `p`. end_step() closes it.
  void begin_step();
  void end_phase(Phase phase);
  void end_step();

  // Work between pause() and resume() (evaluation, checkpoints) is left out of the window's wall
  // time. pause() waits for the device first, so the queued steps count as steps, not as pause.
  void pause();
  void resume();

  // Waits for the device once, returns the window since the previous call (or construction) and
  // starts the next one.
  WindowTiming close_window();

 private:
  using Clock = std::chrono::steady_clock;
  std::unique_ptr<DeviceClock> clock_;
  std::vector<int> phase_of_stamp_;  // stamp i > 0 ends the interval (i-1, i), spent in this phase
  std::vector<bool> opens_step_;     // stamp i begins a step: the interval before it is not counted
  WindowTiming window_;
  Clock::time_point window_start_, step_start_, pause_start_;
  double paused_seconds_ = 0;
  bool paused_ = false;
};

}  // namespace hcl::train
