// A CUDA graph of one training step's device work. TrainStep captures its sequence (zero_grad to
// the optimizer, collectives included) once on a side stream and replays it with one launch per
// step, so the host's cost of a step is a handful of calls instead of ~1,000 kernel launches.
// The real one is CUDA-only (step_graph_cuda.cpp); a build without CUDA compiles
// train/cuda_stub.cpp, whose constructor throws hcl::Error.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>

namespace hcl::train {

class StepGraph {
 public:
  explicit StepGraph(const torch::Device& device);  // a CUDA device
  ~StepGraph();
  StepGraph(const StepGraph&) = delete;
  StepGraph& operator=(const StepGraph&) = delete;

  // Records the device work that `work` enqueues on the current stream (and on streams it forks
  // and joins back), without running it; the previous capture is dropped first. `work` must not
  // read device values on the host nor synchronise. What it allocates stays reserved for the
  // replays (the graph's private memory pool). Autocast's weight cache is off during the capture.
  // Throws (hcl::Error or c10::Error) when the capture fails; the graph is then empty.
  void capture(const std::function<void()>& work);
  // Runs the captured work on the current stream (enqueued: no wait).
  void replay();
  void reset();
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace hcl::train
