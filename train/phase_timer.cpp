// PhaseTimer and the host clock used for CPU devices.
#include "train/phase_timer.h"

#include "core/check.h"

namespace hcl::train {
namespace {

class HostClock final : public DeviceClock {
 public:
  void record(size_t slot) override {
    if (slot >= stamps_.size()) stamps_.resize(slot + 1);
    stamps_[slot] = std::chrono::steady_clock::now();
  }
  void synchronize() override {}
  double elapsed_ms(size_t from, size_t to) override {
    return std::chrono::duration<double, std::milli>(stamps_.at(to) - stamps_.at(from)).count();
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> stamps_;
};

}  // namespace

std::unique_ptr<DeviceClock> make_cuda_device_clock(const torch::Device& device);  // phase_timer_cuda.cpp

std::unique_ptr<DeviceClock> make_device_clock(const torch::Device& device) {
  if (device.is_cuda()) return make_cuda_device_clock(device);
  return std::make_unique<HostClock>();
}

const char* to_string(Phase phase) {
  static constexpr std::array<const char*, kPhaseCount> names = {"data", "forward",   "objective", "backward",
                                                                 "sync", "optimizer", "graph"};
  return names.at(static_cast<size_t>(phase));
}

double WindowTiming::device_ms_per_step(Phase phase) const {
  return steps > 0 ? device_ms[static_cast<size_t>(phase)] / static_cast<double>(steps) : 0;
}
double WindowTiming::host_ms_per_step() const { return steps > 0 ? host_ms / static_cast<double>(steps) : 0; }
double WindowTiming::seconds_per_step() const {
  return steps > 0 ? wall_seconds / static_cast<double>(steps) : 0;
}

PhaseTimer::PhaseTimer(const torch::Device& device)
    : clock_(make_device_clock(device)), window_start_(Clock::now()) {}

void PhaseTimer::begin_step() {
  HCL_ASSERT(!paused_, "PhaseTimer: begin_step() while paused");
  step_start_ = Clock::now();
  clock_->record(phase_of_stamp_.size());
  phase_of_stamp_.push_back(-1);
  opens_step_.push_back(true);
}

void PhaseTimer::end_phase(Phase phase) {
  HCL_ASSERT(!phase_of_stamp_.empty(), "PhaseTimer: end_phase() before begin_step()");
  clock_->record(phase_of_stamp_.size());
  phase_of_stamp_.push_back(static_cast<int>(phase));
  opens_step_.push_back(false);
}

void PhaseTimer::end_step() {
  window_.host_ms += std::chrono::duration<double, std::milli>(Clock::now() - step_start_).count();
  ++window_.steps;
}

void PhaseTimer::pause() {
  HCL_ASSERT(!paused_, "PhaseTimer: pause() twice");
  clock_->synchronize();  // the steps queued so far belong to the window, not to the pause
  pause_start_ = Clock::now();
  paused_ = true;
}

void PhaseTimer::resume() {
  HCL_ASSERT(paused_, "PhaseTimer: resume() without pause()");
  paused_seconds_ += std::chrono::duration<double>(Clock::now() - pause_start_).count();
  paused_ = false;
}

WindowTiming PhaseTimer::close_window() {
  HCL_ASSERT(!paused_, "PhaseTimer: close_window() while paused");
  clock_->synchronize();
  const auto now = Clock::now();
  WindowTiming done = window_;
  done.wall_seconds = std::chrono::duration<double>(now - window_start_).count() - paused_seconds_;
  for (size_t i = 1; i < phase_of_stamp_.size(); ++i)
    if (!opens_step_[i]) done.device_ms[static_cast<size_t>(phase_of_stamp_[i])] += clock_->elapsed_ms(i - 1, i);
  window_ = WindowTiming();
  phase_of_stamp_.clear();
  opens_step_.clear();
  window_start_ = now;
  paused_seconds_ = 0;
  return done;
}

}  // namespace hcl::train
