// Orders collectives against compute. On CUDA, a collective is launched on a communication stream
// after the compute stream's queued work (an event), so it overlaps what compute does next; join()
// makes the compute stream wait for everything launched. On CPU both run inline.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

namespace hcl::dist {

class StreamOrder {
 public:
  virtual ~StreamOrder() = default;
  // Runs `collective` (which enqueues on the current stream) on the communication stream.
  virtual void launch(const std::function<void()>& collective) = 0;
  // The compute stream waits for every collective launched so far.
  virtual void join() = 0;
};

// CPU: inline. CUDA: a communication stream from LibTorch's pool (needs a CUDA build).
std::unique_ptr<StreamOrder> make_stream_order(const torch::Device& device);

// The CUDA order on `device`: defined in cuda_stream_order.cpp, or in cuda_backend_stub.cpp (an
// hcl::Error) when hcl is built without CUDA.
std::unique_ptr<StreamOrder> make_cuda_stream_order(c10::DeviceIndex device);

}  // namespace hcl::dist
