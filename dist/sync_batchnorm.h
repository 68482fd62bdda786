// SyncBatchNorm for 1-d (N x C) and 2-d (N x C x H x W) inputs: in training over W > 1 ranks, the
// batch mean and variance cover every rank's batch (one all-gather per layer of each rank's mean,
// variance and count, combined exactly) and backward makes one all-reduce per layer, so W ranks of B
// images normalise exactly like one process with W*B. With one rank, or in eval mode, it is
// LibTorch's own batch_norm (cuDNN on a GPU) and communicates nothing. Running statistics are
// updated as torch::nn::BatchNorm2d would on the global batch. Parameters and buffers have
// BatchNorm's names (weight, bias, running_mean, running_var, num_batches_tracked), so state dicts
// are interchangeable. The weight and bias gradients are each rank's share (DataParallel averages).
#pragma once

#include <torch/torch.h>

#include "dist/communicator.h"

namespace hcl::dist {

class SyncBatchNormImpl : public torch::nn::Module {
 public:
  // `comm` must outlive the module (and every backward through it). `synchronise_at_one_rank` is a
  // test switch: the synchronised path (PyTorch's fused kernels on CUDA, one all-gather and one
  // all-reduce over the one rank) instead of LibTorch's batch_norm, so that one GPU runs the code
  // that otherwise first runs on a cluster.
  SyncBatchNormImpl(int64_t num_features, Communicator& comm, double eps = 1e-5, double momentum = 0.1,
                    bool synchronise_at_one_rank = false);
  torch::Tensor forward(const torch::Tensor& input);

  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  int64_t num_features_;
  double eps_, momentum_;
  Communicator* comm_;
  bool synchronise_at_one_rank_;
};
TORCH_MODULE(SyncBatchNorm);

}  // namespace hcl::dist
