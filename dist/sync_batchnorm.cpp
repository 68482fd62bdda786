// SyncBatchNorm: LibTorch's own batch_norm where nothing needs synchronising (one rank, or
// evaluation); otherwise per-rank statistics, one all-gather in forward, one all-reduce in backward.
//
// The synchronised math (as PyTorch's SyncBatchNorm; N = the global count, mu and invstd the global
// statistics):
//   forward:  each rank r has (mean_r, var_r or invstd_r, n_r); gathered and combined exactly
//             (mu = sum n_r mean_r / N, var = sum n_r (var_r + (mean_r - mu)^2) / N);
//             y = (x - mu) * invstd * weight + bias; running_var takes var * N / (N - 1).
//   backward: sum_dy = sum dy, sum_dy_xmu = sum dy (x - mu) over the rank's rows, summed over ranks;
//             dx = (dy - sum_dy / N - (x - mu) invstd^2 sum_dy_xmu / N) * invstd * weight;
//             the weight and bias gradients stay local (DataParallel averages them).
// On CUDA the fused kernels PyTorch uses do each step (batch_norm_stats, _gather_stats_with_counts,
// _elemt, _backward_reduce, _backward_elemt; they have no CPU kernels in LibTorch 1.13), in the
// input's dtype (bf16 under autocast) with float statistics. On CPU the same steps are plain ops in
// float (double for double inputs), and gather the variance instead of invstd (exact in double).
#include "dist/sync_batchnorm.h"

#include <ATen/ATen.h>

#include "core/check.h"
#include "dist/saved_communicator.h"

namespace hcl::dist {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> reduce_dims(const torch::Tensor& input) {
  std::vector<int64_t> dims = {0};
  for (int64_t d = 2; d < input.dim(); ++d) dims.push_back(d);
  return dims;
}

// A per-channel vector shaped to broadcast against an N x C (x H x W) tensor.
torch::Tensor per_channel(const torch::Tensor& v, int64_t dim) {
  std::vector<int64_t> shape(dim, 1);
  shape[1] = v.size(0);
  return v.view(shape);
}

torch::ScalarType cpu_stats_type(const torch::Tensor& input) {
  return input.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

class SyncBatchNormFunction : public torch::autograd::Function<SyncBatchNormFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor input, torch::Tensor weight,
                               torch::Tensor bias, torch::Tensor running_mean, torch::Tensor running_var,
                               double eps, double momentum, Communicator* comm) {
    ctx->saved_data["comm"] = save_communicator(*comm);
    const int64_t c = input.size(1), w = comm->world_size();
    const torch::Tensor x = input.contiguous(input.suggest_memory_format());
    const double local_count = static_cast<double>(x.numel() / c);
    if (x.is_cuda()) {
      torch::Tensor mean, invstd;
      std::tie(mean, invstd) = at::batch_norm_stats(x, eps);
      const torch::Tensor count = torch::full({1}, local_count, mean.options());
      const torch::Tensor all = comm->all_gather(torch::cat({mean, invstd, count}), CollectiveOptions::without_shape_check()).view({w, 2 * c + 1});
      const torch::Tensor counts = all.select(1, 2 * c).to(running_mean.scalar_type()).contiguous();
      std::tie(mean, invstd) = at::batch_norm_gather_stats_with_counts(
          x, all.narrow(1, 0, c), all.narrow(1, c, c), running_mean, running_var, momentum, eps, counts);
      ctx->save_for_backward({x, weight, mean, invstd, counts.to(torch::kInt)});
      return at::batch_norm_elemt(x, weight, bias, mean, invstd, eps);
    }
    // CPU: the same steps with plain ops.
    const auto dims = reduce_dims(x);
    const torch::Tensor xs = x.to(cpu_stats_type(x));
    torch::Tensor local_var, local_mean;
    std::tie(local_var, local_mean) = torch::var_mean(xs, dims, /*unbiased=*/false);
    const torch::Tensor count = torch::full({1}, local_count, local_mean.options());
    const torch::Tensor all = comm->all_gather(torch::cat({local_mean, local_var, count}), CollectiveOptions::without_shape_check()).view({w, 2 * c + 1});
    const torch::Tensor means = all.narrow(1, 0, c), vars = all.narrow(1, c, c);
    const torch::Tensor counts = all.narrow(1, 2 * c, 1);  // W x 1
    const torch::Tensor total = counts.sum();
    const torch::Tensor mean = (counts * means).sum(0) / total;
    const torch::Tensor var = (counts * (vars + (means - mean).square())).sum(0) / total;
    const torch::Tensor invstd = (var + eps).rsqrt();
    // n / (n - 1) on the tensor: no host read.
    running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()), momentum);
    running_var.mul_(1 - momentum)
        .add_((var * (total / (total - 1).clamp_min(1))).to(running_var.scalar_type()), momentum);
    ctx->save_for_backward({xs, weight, mean, invstd, total});
    const int64_t dim = x.dim();
    const torch::Tensor scale = invstd * weight.to(xs.scalar_type());
    return torch::addcmul(per_channel(bias.to(xs.scalar_type()), dim), xs - per_channel(mean, dim),
                          per_channel(scale, dim))
        .to(x.scalar_type());
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Communicator* comm = &saved_communicator(ctx->saved_data["comm"])->comm();
    const variable_list saved = ctx->get_saved_variables();
    const torch::Tensor& x = saved[0];
    torch::Tensor weight = saved[1];
    const torch::Tensor &mean = saved[2], &invstd = saved[3];
    const int64_t c = x.size(1);
    const bool weight_g = ctx->needs_input_grad(1), bias_g = ctx->needs_input_grad(2);
    if (x.is_cuda()) {
      const torch::Tensor dy = grads[0].contiguous(x.suggest_memory_format());
      torch::Tensor sum_dy, sum_dy_xmu, grad_weight, grad_bias;
      std::tie(sum_dy, sum_dy_xmu, grad_weight, grad_bias) =
          at::batch_norm_backward_reduce(dy, x, mean, invstd, weight, true, weight_g, bias_g);
      // Always issued (every rank the same collectives), even if the input needs no gradient.
      torch::Tensor combined = torch::cat({sum_dy, sum_dy_xmu});
      comm->all_reduce(combined, ReduceOp::Sum, CollectiveOptions::without_shape_check());
      if (weight.scalar_type() != mean.scalar_type()) weight = weight.to(mean.scalar_type());
      const torch::Tensor grad_input = at::batch_norm_backward_elemt(
          dy, x, mean, invstd, weight, combined.narrow(0, 0, c), combined.narrow(0, c, c), saved[4]);
      return {grad_input, weight_g ? grad_weight : torch::Tensor(), bias_g ? grad_bias : torch::Tensor(),
              torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    const torch::Tensor& total = saved[4];
    const int64_t dim = x.dim();
    const auto dims = reduce_dims(x);
    const torch::Tensor dy = grads[0].to(x.scalar_type());
    const torch::Tensor xmu = x - per_channel(mean, dim);
    torch::Tensor combined = torch::cat({dy.sum(dims), (dy * xmu).sum(dims)});
    const torch::Tensor local = combined.clone();  // the rank's own sums: weight and bias gradients
    comm->all_reduce(combined, ReduceOp::Sum, CollectiveOptions::without_shape_check());
    const torch::Tensor mean_dy = combined.narrow(0, 0, c) / total;
    const torch::Tensor mean_dy_xmu = combined.narrow(0, c, c) / total;
    const torch::Tensor scale = invstd * weight.to(x.scalar_type());
    const torch::Tensor grad_input =
        ((dy - per_channel(mean_dy, dim)) - xmu * per_channel(invstd.square() * mean_dy_xmu, dim)) *
        per_channel(scale, dim);
    const auto out_type = saved[1].scalar_type();
    return {grad_input.to(grads[0].scalar_type()),
            weight_g ? (local.narrow(0, c, c) * invstd).to(out_type) : torch::Tensor(),
            bias_g ? local.narrow(0, 0, c).to(out_type) : torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

SyncBatchNormImpl::SyncBatchNormImpl(int64_t num_features, Communicator& comm, double eps, double momentum,
                                     bool synchronise_at_one_rank)
    : num_features_(num_features),
      eps_(eps),
      momentum_(momentum),
      comm_(&comm),
      synchronise_at_one_rank_(synchronise_at_one_rank) {
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
  if (is_training()) {
    torch::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  if (!is_training() || (comm_->world_size() == 1 && !synchronise_at_one_rank_)) {
    // Nothing to synchronise: LibTorch's batch_norm (cuDNN on a GPU, mixed bf16/float there).
    // Debian's CPU LibTorch needs the input in the parameters' dtype.
    const bool cast = !input.is_cuda() && input.scalar_type() != weight.scalar_type();
    const torch::Tensor x = cast ? input.to(weight.scalar_type()) : input;
    const torch::Tensor y = torch::batch_norm(x, weight, bias, running_mean, running_var, is_training(),
                                              momentum_, eps_, /*cudnn_enabled=*/true);
    return cast ? y.to(input.scalar_type()) : y;
  }
  HCL_REQUIRE(input.numel() > 0, "SyncBatchNorm: every rank needs a non-empty batch, got ", input.sizes());
  return SyncBatchNormFunction::apply(input, weight, bias, running_mean, running_var, eps_, momentum_, comm_);
}

}  // namespace hcl::dist
