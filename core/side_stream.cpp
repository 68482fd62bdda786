// SideStream on c10's stream pool, stream guard and events (the CUDA implementations on a GPU).
#include "core/side_stream.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

namespace hcl {

SideStream::SideStream(const torch::Device& device) {
  if (!device.is_cuda()) return;
  const c10::impl::VirtualGuardImpl impl(device.type());
  const torch::Device on = device.has_index() ? device : impl.getDevice();
  stream_ = impl.getStreamFromGlobalPool(on);
  done_.emplace(device.type());
}

void SideStream::run(const std::function<void()>& work) {
  if (!stream_) {
    work();
    return;
  }
  const c10::StreamGuard on_side_stream(*stream_);
  work();
  done_->record(*stream_);
}

void SideStream::hand_over(const torch::Tensor& tensor) {
  if (!stream_) return;
  const c10::impl::VirtualGuardImpl impl(stream_->device_type());
  const c10::Stream current = impl.getStream(stream_->device());
  done_->block(current);
  if (tensor.defined()) tensor.record_stream(current);
}

}  // namespace hcl
