// StepGuard: the finite check, the agreement across ranks, and the roll-back of a skipped step.
#include "train/step_guard.h"

#include "core/check.h"
#include "core/log.h"

namespace hcl::train {

torch::Tensor gradient_norm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  // One norm per gradient (a single multi-tensor op), then the norm of those: non-finite exactly
  // when some entry is.
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({}, torch::kFloat);
  std::vector<torch::Tensor> norms = at::_foreach_norm(grads);
  for (auto& n : norms) n = n.to(torch::kFloat);
  return torch::stack(norms).norm();
}

StepGuard::StepGuard(torch::nn::Module& module, int64_t max_consecutive)
    : params_(module.parameters()), buffers_(module.buffers()), max_consecutive_(max_consecutive) {
  HCL_REQUIRE(max_consecutive >= 1, "StepGuard: max_consecutive must be >= 1, got ", max_consecutive);
  for (const auto& b : buffers_) saved_buffers_.push_back(torch::empty_like(b));
}

void StepGuard::before_forward() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i) saved_buffers_[i].copy_(buffers_[i]);
}

bool StepGuard::check(dist::Communicator& comm, const torch::Tensor& loss, int64_t step) {
  torch::NoGradGuard no_grad;
  grad_norm_ = gradient_norm(params_).to(loss.device());
  torch::Tensor bad = torch::logical_not(torch::isfinite(loss.to(torch::kFloat)) & torch::isfinite(grad_norm_))
                          .to(torch::kFloat)
                          .reshape({1});
  comm.all_reduce(bad, dist::ReduceOp::Max, dist::CollectiveOptions::without_shape_check());  // one flag everywhere
  if (bad.item<float>() == 0) {
    consecutive_ = 0;
    return true;
  }
  for (const auto& p : params_)
    if (p.grad().defined()) p.grad().zero_();
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_buffers_[i]);
  ++skipped_;
  ++consecutive_;
  if (comm.rank() == 0)
    HCL_LOG(warning) << "step " << step << ": non-finite loss or gradients on some rank; step skipped on "
                   << "every rank (" << consecutive_ << " in a row, " << skipped_ << " in all)";
  if (consecutive_ >= max_consecutive_)
    throw AgreedError(detail::concat("non-finite loss or gradients in ", consecutive_,
                                     " consecutive steps (up to step ", step, "; --max-skipped-steps ",
                                     max_consecutive_, "): stopping. Lower --lr, or check the data"));
  return false;
}

}  // namespace hcl::train
