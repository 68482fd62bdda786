// Non-finite steps. A step whose loss or averaged gradients are not finite on some rank is skipped
// on every rank together (the decision is one all-reduce), so nothing non-finite reaches the
// parameters, the optimizer state or the BatchNorm running statistics (those are restored to their
// values before the step). After max_consecutive skipped steps in a row the run stops.
//
// Two ways to take the decision, with identical results (tested):
// - on the host: check() reads the agreed flag and acts on it (one host read per step);
// - on the device: decide_on_device() returns the flag without reading it, zeroes the gradients and
//   restores the buffers by device-side selects, and the optimizer skips on the flag (no host read:
//   the step can be a CUDA graph). record() copies the flag to host memory after the step, and
//   settle() counts it one step later, so "too many skipped steps" stops the run one step later.
#pragma once

#include <torch/torch.h>

#include <limits>
#include <memory>
#include <vector>

#include "dist/communicator.h"

namespace hcl::train {

struct SkipRecord {
  int64_t step = 0;         // 1-based step that was skipped
  int64_t consecutive = 0;  // skips in a row, this one included
  int64_t skipped = 0;      // skips so far
};

// L2 norm of all gradients of `params` (a 0-d float tensor; 0 when none has a gradient).
torch::Tensor gradient_norm(const std::vector<torch::Tensor>& params);

class StepGuard {
 public:
  // `module` must outlive the guard. max_consecutive >= 1.
  StepGuard(torch::nn::Module& module, int64_t max_consecutive);

  // Before the step's first forward: remembers the buffers that forward passes update.
  void before_forward();

  // After the gradients are synchronised: whether the optimizer may step. On false the gradients
  // are zeroed, the buffers restored and the skip counted; when that makes max_consecutive skips in
  // a row, throws hcl::AgreedError on every rank. Collective over `comm` (one all-reduce, and one
  // read of the result on the host). `step` (1-based) only names the step in messages.
  bool check(dist::Communicator& comm, const torch::Tensor& loss, int64_t step);

  // After the gradients are synchronised: the agreed flag (one float on the loss's device, 1 = skip)
  // with its consequences applied on the device (gradients zeroed, buffers restored where it is 1).
  // Reads nothing on the host. Collective over `comm` (one all-reduce).
  torch::Tensor decide_on_device(dist::Communicator& comm, const torch::Tensor& loss);
  // After the step that decide_on_device() belongs to was enqueued: copies its flag to host memory
  // (pinned, without waiting, on CUDA).
  void record(const torch::Tensor& skip, int64_t step);
  // Counts the recorded decisions of steps up to `up_to_step` (waiting for their copies) and
  // returns the skips among them, each logged on rank 0. Throws hcl::AgreedError, on every rank
  // alike, when they make max_consecutive skips in a row. TrainStep settles step k-1's decision
  // after it has queued step k, so the wait never leaves the device idle.
  std::vector<SkipRecord> settle(int64_t up_to_step = std::numeric_limits<int64_t>::max());

  // L2 norm of the gradients that check() saw (a 0-d tensor on the gradients' device).
  const torch::Tensor& grad_norm() const { return grad_norm_; }
  int64_t skipped() const { return skipped_; }
  int64_t consecutive() const { return consecutive_; }

 private:
  struct Pending;
  torch::Tensor agreed_flag(dist::Communicator& comm, const torch::Tensor& loss);
  // Counts one decision; throws AgreedError at max_consecutive in a row.
  void count(bool skipped, int64_t step, bool log);

  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> buffers_;
  std::vector<torch::Tensor> saved_buffers_;
  int64_t max_consecutive_;
  int64_t skipped_ = 0;
  int64_t consecutive_ = 0;
  bool rank0_ = false;  // logs the skips
  torch::Tensor grad_norm_;
  std::vector<std::shared_ptr<Pending>> pending_;
};

}  // namespace hcl::train
