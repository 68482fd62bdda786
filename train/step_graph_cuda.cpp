// StepGraph on LibTorch's at::cuda::CUDAGraph.
#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "core/check.h"
#include "core/torch_compat.h"
#include "train/step_graph.h"

namespace hcl::train {

struct StepGraph::Impl {
  c10::DeviceIndex device = 0;
  std::unique_ptr<at::cuda::CUDAGraph> graph;
};

StepGraph::StepGraph(const torch::Device& device) : impl_(std::make_unique<Impl>()) {
  HCL_REQUIRE(device.is_cuda(), "StepGraph: CUDA graphs need a CUDA device, got ", device);
  impl_->device = device.index() < 0 ? c10::cuda::current_device() : device.index();
}

StepGraph::~StepGraph() = default;

namespace {

// Autocast's cache of cast weights off for the capture (a cached cast made during the capture
// would be a graph allocation reused outside it), restored after.
class NoAutocastCache {
 public:
  NoAutocastCache() : was_(at::autocast::is_autocast_cache_enabled()) { at::autocast::set_autocast_cache_enabled(false); }
  ~NoAutocastCache() { at::autocast::set_autocast_cache_enabled(was_); }
  NoAutocastCache(const NoAutocastCache&) = delete;
  NoAutocastCache& operator=(const NoAutocastCache&) = delete;

 private:
  bool was_;
};

void begin(at::cuda::CUDAGraph& graph) {
#if HCL_TORCH_AT_LEAST(2, 0)
  // Thread-local mode: the NCCL watchdog thread keeps querying its (uncaptured) events meanwhile;
  // in the global mode such a call from another thread would invalidate the capture. The autograd
  // engine's thread still launches onto the capturing stream, so backward is captured all the same.
  graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
#else
  graph.capture_begin();
#endif
}

}  // namespace

void StepGraph::capture(const std::function<void()>& work) {
  reset();
  c10::cuda::CUDAGuard on_device(impl_->device);
  // Nothing of the eager steps may still be running into the capture's memory.
  c10::cuda::device_synchronize();
  const c10::cuda::CUDAStream outer = c10::cuda::getCurrentCUDAStream(impl_->device);
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, impl_->device);
  at::cuda::CUDAEvent ready;
  ready.record(outer);
  ready.block(side);
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  {
    const c10::cuda::CUDAStreamGuard on_side(side);
    const NoAutocastCache no_cache;
    begin(*graph);
    try {
      work();
    } catch (...) {
      try {
        graph->capture_end();  // ends the stream's capture; instantiating a broken graph may throw
      } catch (...) {
      }
      throw;
    }
    graph->capture_end();
  }
  at::cuda::CUDAEvent captured;
  captured.record(side);
  captured.block(outer);
  impl_->graph = std::move(graph);
}

void StepGraph::replay() {
  HCL_ASSERT(impl_->graph != nullptr, "StepGraph: replay() before a successful capture()");
  c10::cuda::CUDAGuard on_device(impl_->device);
  impl_->graph->replay();
}

void StepGraph::reset() { impl_->graph.reset(); }

bool StepGraph::captured() const { return impl_->graph != nullptr; }

}  // namespace hcl::train
