// StreamOrder factory and the inline (CPU) implementation.
#include "dist/stream_order.h"

namespace hcl::dist {
namespace {
class InlineOrder final : public StreamOrder {
 public:
  void launch(const std::function<void()>& collective) override { collective(); }
  void join() override {}
};
}  // namespace

std::unique_ptr<StreamOrder> make_stream_order(const torch::Device& device) {
  if (!device.is_cuda()) return std::make_unique<InlineOrder>();
  return make_cuda_stream_order(device.index());
}

}  // namespace hcl::dist
