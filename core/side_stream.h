// A second stream of a device, for work that should overlap the current stream's (the next step's
// input views while this step trains), handed over to the current stream by an event. On a device
// without streams (the CPU) the work runs inline, in order, and the hand-over has nothing to do.
// Written against c10's device-generic stream and event interfaces, so one source serves the CPU
// and the CUDA builds.
#pragma once

#include <c10/core/StreamGuard.h>
#include <torch/torch.h>

#include <functional>
#include <optional>

namespace hcl {

class SideStream {
 public:
  // A stream from the device's pool (CUDA); none on the CPU.
  explicit SideStream(const torch::Device& device);

  // Runs `work` with the side stream current (its kernels, copies and allocations go there) and
  // records the event after it. The host does not wait.
  void run(const std::function<void()>& work);
  // The current stream waits for everything run() has queued so far, and `tensor` (made by run())
  // is marked as used by the current stream: the allocator will not give its memory to the side
  // stream's later work until the current stream is done with it.
  void hand_over(const torch::Tensor& tensor);

  bool has_stream() const { return stream_.has_value(); }

 private:
  std::optional<c10::Stream> stream_;
  std::optional<c10::Event> done_;
};

// The one stream a component always runs its device work on (TrainStep: the model, DataParallel's
// gradient accumulators and hooks, every step and the CUDA-graph capture), so that autograd's
// accumulators, which remember the stream they were made on, and a capture, which must not touch
// the default stream, agree. A Scope makes it current; on entry it waits for the caller's current
// stream (inputs made there are ready) and on exit the caller's stream waits for it (outputs are
// ready there, and memory the caller frees afterwards is not reused under the component's work).
// On a device without streams (the CPU) there is no stream and a Scope does nothing.
class DedicatedStream {
 public:
  explicit DedicatedStream(const torch::Device& device);

  class Scope {
   public:
    explicit Scope(const DedicatedStream& stream);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    const DedicatedStream* owner_;
    std::optional<c10::Stream> caller_;
    std::optional<c10::StreamGuard> guard_;
  };

 private:
  std::optional<c10::Stream> stream_;
  // Events for the two hand-overs (mutable: recording is not a change of the stream's identity).
  mutable std::optional<c10::Event> entered_, left_;
};

}  // namespace hcl
