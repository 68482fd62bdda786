// SyncBatchNorm: per-rank moments, one differentiable all-gather, Chan's exact combination.
#include "dist/sync_batchnorm.h"

#include "core/check.h"
#include "dist/gather.h"

namespace hcl::dist {

SyncBatchNormImpl::SyncBatchNormImpl(int64_t num_features, Communicator& comm, double eps, double momentum)
    : num_features_(num_features), eps_(eps), momentum_(momentum), comm_(&comm) {
  HCL_REQUIRE(num_features > 0, "SyncBatchNorm: num_features must be > 0, got ", num_features);
  weight = register_parameter("weight", torch::ones({num_features}));
  bias = register_parameter("bias", torch::zeros({num_features}));
  running_mean = register_buffer("running_mean", torch::zeros({num_features}));
  running_var = register_buffer("running_var", torch::ones({num_features}));
  num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
}

torch::Tensor SyncBatchNormImpl::forward(const torch::Tensor& input) {
  HCL_REQUIRE((input.dim() == 2 || input.dim() == 4) && input.size(1) == num_features_,
              "SyncBatchNorm: expected N x ", num_features_, " or N x ", num_features_,
              " x H x W input, got ", input.sizes());
  // Shape of a per-channel vector broadcast against the input.
  std::vector<int64_t> channel_shape(input.dim(), 1);
  channel_shape[1] = num_features_;
  if (!is_training()) {
    const torch::Tensor scale = weight * torch::rsqrt(running_var + eps_);
    return (input - running_mean.view(channel_shape)) * scale.view(channel_shape) + bias.view(channel_shape);
  }
  // Statistics in at least float32 (bf16 activations under autocast).
  const auto stats_type = input.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor x = input.to(stats_type);
  std::vector<int64_t> reduce_dims = {0};
  for (int64_t d = 2; d < input.dim(); ++d) reduce_dims.push_back(d);
  const double local_count = static_cast<double>(input.numel() / num_features_);
  const torch::Tensor local_mean = x.mean(reduce_dims);
  const torch::Tensor local_m2 = (x - local_mean.view(channel_shape)).square().sum(reduce_dims);

  // One gather of [count, mean, M2] per rank (count travels as data so ranks may differ in B).
  const torch::Tensor count_row = torch::full({1}, local_count, local_mean.options());
  const torch::Tensor row = torch::cat({count_row, local_mean, local_m2}).unsqueeze(0);
  const torch::Tensor all = all_gather_with_grad(*comm_, row);  // W x (1 + 2C)
  const torch::Tensor counts = all.select(1, 0).detach().unsqueeze(1);  // W x 1
  const torch::Tensor means = all.narrow(1, 1, num_features_);
  const torch::Tensor m2s = all.narrow(1, 1 + num_features_, num_features_);
  const torch::Tensor total = counts.sum();
  const torch::Tensor mean = (counts * means).sum(0) / total;
  const torch::Tensor m2 = (m2s + counts * (means - mean).square()).sum(0);
  const torch::Tensor var = m2 / total;

  {
    torch::NoGradGuard no_grad;
    // n / (n - 1) on the device: no host synchronisation inside a step.
    const torch::Tensor n = total.detach();
    const torch::Tensor unbiased = var.detach() * (n / (n - 1).clamp_min(1));
    running_mean.mul_(1 - momentum_).add_(mean.detach().to(running_mean.scalar_type()), momentum_);
    running_var.mul_(1 - momentum_).add_(unbiased.to(running_var.scalar_type()), momentum_);
    num_batches_tracked.add_(1);
  }
  const torch::Tensor scale = weight.to(stats_type) * torch::rsqrt(var + eps_);
  const torch::Tensor shift = bias.to(stats_type) - mean * scale;
  return (x * scale.view(channel_shape) + shift.view(channel_shape)).to(input.scalar_type());
}

}  // namespace hcl::dist
