// The CUDA StreamOrder: a high-priority communication stream ordered by events.
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dist/stream_order.h"

namespace hcl::dist {
namespace {

class CudaStreamOrder final : public StreamOrder {
 public:
  explicit CudaStreamOrder(c10::DeviceIndex device)
      : device_(device), comm_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device)) {}

  void launch(const std::function<void()>& collective) override {
    at::cuda::CUDAEvent ready;
    ready.record(c10::cuda::getCurrentCUDAStream(device_));
    ready.block(comm_);
    c10::cuda::CUDAStreamGuard on_comm(comm_);
    collective();
  }

  void join() override {
    at::cuda::CUDAEvent done;
    done.record(comm_);
    done.block(c10::cuda::getCurrentCUDAStream(device_));
  }

 private:
  c10::DeviceIndex device_;
  c10::cuda::CUDAStream comm_;
};

}  // namespace

std::unique_ptr<StreamOrder> make_cuda_stream_order(c10::DeviceIndex device) {
  return std::make_unique<CudaStreamOrder>(device);
}

}  // namespace hcl::dist
