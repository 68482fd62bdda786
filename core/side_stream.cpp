// SideStream and DedicatedStream on c10's stream pool, stream guard and events (the CUDA
// implementations on a GPU).
#include "core/side_stream.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>

namespace hcl {

namespace {

// A stream from `device`'s pool (CUDA); none on the CPU.
std::optional<c10::Stream> pool_stream(const torch::Device& device) {
  if (!device.is_cuda()) return std::nullopt;
  const c10::impl::VirtualGuardImpl impl(device.type());
  return impl.getStreamFromGlobalPool(device.has_index() ? device : impl.getDevice());
}

}  // namespace

SideStream::SideStream(const torch::Device& device) : stream_(pool_stream(device)) {
  if (stream_) done_.emplace(device.type());
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

DedicatedStream::DedicatedStream(const torch::Device& device) : stream_(pool_stream(device)) {
  if (!stream_) return;
  entered_.emplace(device.type());
  left_.emplace(device.type());
}

DedicatedStream::Scope::Scope(const DedicatedStream& stream) : owner_(&stream) {
  if (!stream.stream_) return;
  const c10::impl::VirtualGuardImpl impl(stream.stream_->device_type());
  caller_ = impl.getStream(stream.stream_->device());
  if (*caller_ != *stream.stream_) {
    stream.entered_->record(*caller_);
    stream.entered_->block(*stream.stream_);
  }
  guard_.emplace(*stream.stream_);
}

DedicatedStream::Scope::~Scope() {
  if (!caller_) return;
  guard_.reset();  // the caller's stream is current again
  if (*caller_ != *owner_->stream_) {
    owner_->left_->record(*owner_->stream_);
    owner_->left_->block(*caller_);
  }
}

}  // namespace hcl
