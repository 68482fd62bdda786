// train::TrainStep: one data-parallel optimizer step, the only place that writes its sequence:
//   zero gradients -> (finite check: remember the buffers) -> for each micro-batch: the two views
//   through the model, the global-batch objective, backward (gradient buckets reduced on the last)
//   -> wait for the buckets -> agreed finite check -> optimizer step (skipped on the check's flag).
// By default the finite check decides on the device (train/step_guard.h), so the sequence reads
// nothing back to the host: it is what a CUDA graph captures (train/step_graph.h).
// The trainer, the training benchmark and the equivalence tests all run their steps through it.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/side_stream.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "loss/objective.h"
#include "model/contrastive_model.h"
#include "train/global_objective.h"
#include "train/optim.h"
#include "train/phase_timer.h"
#include "train/step.h"
#include "train/step_graph.h"
#include "train/step_guard.h"

namespace hcl::train {

struct StepOptions {
  // Micro-batches per step (divides the per-rank batch). Each micro-batch is its own global
  // objective (N = 2 W B/k - 2); gradients are averaged over micro-batches and reduced once.
  TORCH_ARG(int64_t, accumulate) = 1;
  TORCH_ARG(ViewForward, view_forward) = ViewForward::PerView;
  TORCH_ARG(bool, bf16) = false;  // bf16 autocast around forward and backward (CUDA only)
  // Skip, on every rank together, a step whose loss or gradients are not finite on some rank.
  TORCH_ARG(bool, finite_check) = true;
  TORCH_ARG(int64_t, max_skipped_steps) = 10;  // in a row; then AgreedError
  // The skip decision on the device, counted one step late (true), or read at once (false).
  TORCH_ARG(bool, guard_on_device) = true;
  // Norm layers: SyncBatchNorm over the gradient communicator (W x B equals 1 x WB) or per-rank BN.
  TORCH_ARG(bool, sync_bn) = true;
  // How the global objective meets the other ranks' views (train/global_objective.h).
  TORCH_ARG(ObjectiveComm, objective_comm) = ObjectiveComm::AllGather;
  TORCH_ARG(int64_t, bucket_bytes) = 25 << 20;
  // Reduce buckets from autograd hooks while backward runs (CUDA), or all after backward (CPU).
  TORCH_ARG(bool, overlap) = false;
  TORCH_ARG(CudaGraphMode, cuda_graph) = CudaGraphMode::Off;
  // Eager steps before the capture (cuDNN's autotuning, NCCL's set-up and the optimizer state
  // happen outside the graph).
  TORCH_ARG(int64_t, graph_warmup_steps) = 3;
  // Test switch: the W > 1 code at one rank too (gradient buckets with their hooks and all-reduces,
  // SyncBatchNorm's synchronised kernels), so that one GPU runs what otherwise first runs on a cluster.
  TORCH_ARG(bool, multi_rank_paths_at_one_rank) = false;
};

struct GraphCounts {
  int64_t captures = 0;
  int64_t replays = 0;
  double capture_seconds = 0;
};

struct StepResult {
  torch::Tensor loss;          // this rank's loss, mean over micro-batches (0-d, detached)
  loss::ObjectiveStats stats;  // of the first micro-batch (defined when the objective asked for them)
  // With the finite check: this step's agreed decision (one float, 1 = skipped on every rank).
  // With the decision on the device, reading it waits for the step: the trainer reads `skips`.
  torch::Tensor skip;
  std::vector<SkipRecord> skips;  // the skips that became known on the host during this call
  // Whether the optimizer stepped (reads `skip`: a host synchronisation on CUDA).
  bool applied() const { return !skip.defined() || skip.item<float>() == 0; }
};

class TrainStep {
 public:
  // Builds the model with the given norm layers (called once, here; the builder seeds the
  // initialisation and may change the dtype). Then the model goes to `device` (channels-last on
  // CUDA), rank 0's parameters are broadcast to every rank, and the optimizer is made. Collective.
  using ModelBuilder = std::function<model::ContrastiveModel(const model::NormFactory& norm)>;
  TrainStep(dist::Communicator comm, const ModelBuilder& build, StepOptions options,
            const OptimizerOptions& optimizer, const torch::Device& device);
  // The norm layers and the gradient buckets hold references into this object.
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // One optimizer step on this rank's views (B images each). With CUDA graphs, steps after the
  // warm-up are replayed from a graph captured at the first of them (and captured again when the
  // views' shape or the objective's options change: beta's schedule); every step then computes
  // the objective's statistics, and run()'s results are copies of the graph's outputs. Collective: every rank calls run with
  // the same B, objective options and step, and issues the same collectives in the same order
  // (gather per micro-batch, buckets, the finite-check all-reduce). `lr` is used when the step is
  // applied. `step` (1-based global step) names the step in messages and keys HCL_FAULT (throw,
  // nan-grad). With a `timer`, the end of each phase (forward, objective, backward per micro-batch;
  // sync; optimizer) is stamped on it: no synchronisation (train/phase_timer.h).
  StepResult run(const torch::Tensor& view1, const torch::Tensor& view2,
                 const loss::ObjectiveOptions& objective, double lr, int64_t step,
                 PhaseTimer* timer = nullptr);

  // Counts the skip decisions that are still on their way to the host (decision on the device):
  // call it before reading guard() or saving a checkpoint, and after the last step. May throw
  // AgreedError (too many skips in a row), on every rank alike.
  std::vector<SkipRecord> settle() { return guard_.settle(); }

  // "" when steps are replayed from a CUDA graph (after the warm-up), otherwise why they are not.
  const std::string& graph_refusal() const { return graph_refusal_; }
  const GraphCounts& graph_counts() const { return graph_counts_; }

  // L2 norm of the last step's averaged gradients (a 0-d tensor; NaN after a non-finite step).
  torch::Tensor grad_norm() const;
  // Called after the gradients are averaged, before the optimizer uses them (LARS rescales them in
  // place): the tests read the gradients there. With the decision on the host, on applied steps
  // only; on the device, on every step (a skipped step's gradients are zeros by then).
  void set_gradient_observer(std::function<void()> observer) { gradient_observer_ = std::move(observer); }

  model::ContrastiveModel& model() { return model_; }
  Optimizer& optimizer() { return optimizer_; }
  dist::DataParallel& data_parallel() { return data_parallel_; }
  const StepGuard& guard() const { return guard_; }
  // For the caller's own collectives (shape-checked).
  dist::Communicator& comm() { return comm_; }
  const torch::Device& device() const { return device_; }
  const StepOptions& options() const { return options_; }

 private:
  struct MicroBatch {
    torch::Tensor loss;
    loss::ObjectiveStats stats;
  };
  // Everything from zero_grad to the optimizer: no host read when the decision is on the device.
  StepResult sequence(const torch::Tensor& view1, const torch::Tensor& view2,
                      const loss::ObjectiveOptions& objective, int64_t step, PhaseTimer* timer);
  // A step from the CUDA graph: captured first when there is none for these shapes and options.
  StepResult replayed(const torch::Tensor& view1, const torch::Tensor& view2,
                      const loss::ObjectiveOptions& objective, int64_t step, PhaseTimer* timer);
  void capture(const torch::Tensor& view1, const torch::Tensor& view2, const loss::ObjectiveOptions& objective,
               int64_t step);
  MicroBatch forward_backward(const torch::Tensor& view1, const torch::Tensor& view2,
                              const loss::ObjectiveOptions& objective, double loss_scale,
                              const std::function<void(Phase)>& phase_done);
  double loss_scale(int64_t step) const;

  // One communicator for everything the step issues. The objective's gather keeps the per-call
  // shape check (its shapes come from the caller); the gradient buckets, SyncBatchNorm and the
  // finite-step flag skip it per call (their shapes are the same on every rank by construction).
  dist::Communicator comm_;
  StepOptions options_;
  torch::Device device_;
  // The training stream (CUDA; none on the CPU): the model is built, DataParallel's accumulators
  // and hooks are made, every step runs and the CUDA graph is captured on it (one stream, as
  // PyTorch requires of DDP under a whole-step capture). `building_` holds it current while the
  // members below are constructed (released at the end of the constructor).
  DedicatedStream stream_;
  std::optional<DedicatedStream::Scope> building_;
  model::ContrastiveModel model_;
  dist::DataParallel data_parallel_;
  Optimizer optimizer_;
  StepGuard guard_;
  std::function<void()> gradient_observer_;
  // CUDA graph: the graph, its static inputs and outputs, and what it baked in.
  std::string graph_refusal_;
  std::unique_ptr<StepGraph> graph_;
  torch::Tensor slot1_, slot2_;
  StepResult graph_out_;
  loss::ObjectiveOptions graph_objective_;
  int64_t steps_run_ = 0;
  GraphCounts graph_counts_;
};

}  // namespace hcl::train
