// StreamOrder factory and the inline (CPU) implementation.
#include "dist/stream_order.h"

#include "core/check.h"

namespace hcl::dist {

#ifdef HCL_WITH_NCCL
std::unique_ptr<StreamOrder> make_cuda_stream_order(c10::DeviceIndex device);
#endif

namespace {
class InlineOrder final : public StreamOrder {
 public:
  void launch(const std::function<void()>& collective) override { collective(); }
  void join() override {}
};
}  // namespace

std::unique_ptr<StreamOrder> make_stream_order(const torch::Device& device) {
  if (!device.is_cuda()) return std::make_unique<InlineOrder>();
#ifdef HCL_WITH_NCCL
  return make_cuda_stream_order(device.index());
#else
  throw Error("CUDA device requested but hcl was built without CUDA");
#endif
}

}  // namespace hcl::dist
