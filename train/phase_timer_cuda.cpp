// The CUDA DeviceClock: one timing event per slot, recorded on the device's current stream.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>

#include <deque>

#include "train/phase_timer.h"

namespace hcl::train {
namespace {

class CudaEventClock final : public DeviceClock {
 public:
  explicit CudaEventClock(c10::DeviceIndex device) : device_(device) {}

  void record(size_t slot) override {
    while (events_.size() <= slot) events_.emplace_back(cudaEventDefault);  // timing on
    events_[slot].record(c10::cuda::getCurrentCUDAStream(device_));
    last_ = slot;
  }
  void synchronize() override {
    if (!events_.empty()) events_[last_].synchronize();
  }
  double elapsed_ms(size_t from, size_t to) override {
    return static_cast<double>(events_.at(from).elapsed_time(events_.at(to)));
  }

 private:
  c10::DeviceIndex device_;
  std::deque<at::cuda::CUDAEvent> events_;  // grows without moving the recorded events
  size_t last_ = 0;
};

}  // namespace

std::unique_ptr<DeviceClock> make_cuda_device_clock(const torch::Device& device) {
  return std::make_unique<CudaEventClock>(device.index());
}

}  // namespace hcl::train
