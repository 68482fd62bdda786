// train/'s CUDA functions in a build without CUDA (the real ones: phase_timer_cuda.cpp and
// step_graph_cuda.cpp); CMake compiles this file instead.
#include "core/check.h"
#include "train/phase_timer.h"
#include "train/step_graph.h"

namespace hcl::train {

std::unique_ptr<DeviceClock> make_cuda_device_clock(const torch::Device&) {
  throw Error("PhaseTimer: a CUDA device was given but hcl was built without CUDA");
}

// Only the constructor can be reached: it throws, so no StepGraph exists in such a build.
struct StepGraph::Impl {};
StepGraph::StepGraph(const torch::Device&) {
  throw Error("CUDA graphs need a CUDA device, but hcl was built without CUDA");
}
StepGraph::~StepGraph() = default;
void StepGraph::capture(const std::function<void()>&) { HCL_ASSERT(false, "StepGraph without CUDA"); }
void StepGraph::replay() { HCL_ASSERT(false, "StepGraph without CUDA"); }
void StepGraph::reset() {}
bool StepGraph::captured() const { return false; }

}  // namespace hcl::train
