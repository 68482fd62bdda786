// StepGraph on LibTorch's at::cuda::CUDAGraph.
#include "core/torch_compat.h"  // first: its feature macros select headers below

#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#if HCL_TORCH_HAS_HOST_ALLOCATOR_POOLS
#include <ATen/core/CachingHostAllocator.h>
#endif

#include "core/check.h"
#include "core/fault_injection.h"
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

using PoolId = decltype(at::cuda::graph_pool_handle());  // c10::cuda:: in 1.13, c10:: in 2.x

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

void begin(at::cuda::CUDAGraph& graph, PoolId pool) {
#if HCL_TORCH_HAS_CAPTURE_MODE
  // Thread-local mode: the NCCL watchdog thread keeps querying its (uncaptured) events meanwhile;
  // in the global mode such a call from another thread would invalidate the capture. The autograd
  // engine's thread still launches onto the capturing stream, so backward is captured all the same.
  graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
#else
  graph.capture_begin(pool);
#endif
}

// HCL_FAULT=capture-fail: a call that is illegal while the stream captures, so that
// cudaStreamEndCapture fails as a real unsupported operation makes it fail.
void invalidate_capture(const c10::cuda::CUDAStream& stream) {
  (void)cudaStreamSynchronize(stream.stream());
  (void)cudaGetLastError();
}

// After a failed capture: ends the stream's capture if it is still running, takes the caching
// allocator out of capture mode for `pool` and releases the pool, unless CUDAGraph::capture_end
// got that far itself (then the graph's destructor releases it). Without this, the allocator
// believes a capture is still under way and never frees a block that other streams used.
void abandon(const c10::cuda::CUDAStream& stream, c10::DeviceIndex device, PoolId pool) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream.stream(), &status) == cudaSuccess && status != cudaStreamCaptureStatusNone) {
    cudaGraph_t partial = nullptr;
    if (cudaStreamEndCapture(stream.stream(), &partial) == cudaSuccess && partial != nullptr)
      (void)cudaGraphDestroy(partial);
  }
  (void)cudaGetLastError();  // the capture's error is reported by the exception being rethrown
#if HCL_TORCH_HAS_POOL_BY_DEVICE
  bool ended_here = true;
  try {
    c10::cuda::CUDACachingAllocator::endAllocateToPool(device, pool);
  } catch (const std::exception&) {
    ended_here = false;  // capture_end ended it: the failure came later, and the graph releases the pool
  }
#if HCL_TORCH_HAS_HOST_ALLOCATOR_POOLS
  try {
    at::getHostAllocator(at::kCUDA)->end_allocate_to_pool(pool);
  } catch (const std::exception&) {
  }
#endif
  if (!ended_here) return;
  c10::cuda::CUDACachingAllocator::releasePool(device, pool);
#if HCL_TORCH_HAS_HOST_ALLOCATOR_POOLS
  try {
    at::getHostAllocator(at::kCUDA)->release_pool(pool);
  } catch (const std::exception&) {
  }
#endif
#else
  (void)device;
  (void)pool;
#endif
}

}  // namespace

// Captures on the current stream: TrainStep's training stream, on which the model, DataParallel's
// hooks and every eager step run too (a capture on another stream would meet autograd nodes that
// sync with the stream they were made on). The graph's memory comes from a pool this call owns, so
// a failed capture can be cleaned up whatever state CUDAGraph left it in.
void StepGraph::capture(const std::function<void()>& work) {
  const bool recapture = captured();
  reset();
  c10::cuda::CUDAGuard on_device(impl_->device);
  const c10::cuda::CUDAStream stream = c10::cuda::getCurrentCUDAStream(impl_->device);
  HCL_REQUIRE(stream != c10::cuda::getDefaultCUDAStream(impl_->device),
              "StepGraph: a capture needs a stream of its own (TrainStep's training stream), not the default stream");
  // Nothing of the eager steps may still be running into the capture's memory.
  c10::cuda::device_synchronize();
  // reset() released the previous graph's pool, but the caching allocator returns a released pool's
  // blocks to the device only in emptyCache: without it every recapture (a beta schedule recaptures
  // once per change) would keep the previous graph's memory until an out-of-memory error.
  if (recapture) c10::cuda::CUDACachingAllocator::emptyCache();
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
  const PoolId pool = at::cuda::graph_pool_handle();
  {
    const NoAutocastCache no_cache;
    try {
      begin(*graph, pool);
      work();
      if (fault_plan().kind == FaultPlan::Kind::CaptureFail) invalidate_capture(stream);
      graph->capture_end();
    } catch (...) {
      abandon(stream, impl_->device, pool);
      throw;
    }
  }
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
