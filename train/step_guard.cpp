// StepGuard: the finite check, the agreement across ranks, and the roll-back of a skipped step.
#include "train/step_guard.h"

#include <c10/core/Event.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <optional>

#include "core/check.h"
#include "core/log.h"
#include "core/torch_compat.h"

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

// Non-finite on any rank: one flag everywhere (max of the ranks' 0/1), a float of shape [1].
torch::Tensor StepGuard::agreed_flag(dist::Communicator& comm, const torch::Tensor& loss) {
  grad_norm_ = gradient_norm(params_).to(loss.device());
  torch::Tensor bad = torch::logical_not(torch::isfinite(loss.to(torch::kFloat)) & torch::isfinite(grad_norm_))
                          .to(torch::kFloat)
                          .reshape({1});
  comm.all_reduce(bad, dist::ReduceOp::Max, dist::CollectiveOptions::without_shape_check());
  return bad;
}

bool StepGuard::check(dist::Communicator& comm, const torch::Tensor& loss, int64_t step) {
  torch::NoGradGuard no_grad;
  const bool skip = agreed_flag(comm, loss).item<float>() != 0;
  if (skip) {
    for (const auto& p : params_)
      if (p.grad().defined()) p.grad().zero_();
    for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_buffers_[i]);
  }
  count(skip, step, comm.rank() == 0);
  return !skip;
}

torch::Tensor StepGuard::decide_on_device(dist::Communicator& comm, const torch::Tensor& loss) {
  torch::NoGradGuard no_grad;
  const torch::Tensor skip = agreed_flag(comm, loss);
  const torch::Tensor where = skip.reshape({}).to(torch::kBool);
  // Exactly check()'s effects where the flag is 1, and none where it is 0.
  for (const auto& p : params_)
    if (p.grad().defined()) p.grad().masked_fill_(where, 0);
  for (size_t i = 0; i < buffers_.size(); ++i)
    buffers_[i].copy_(torch::where(where, saved_buffers_[i], buffers_[i]));
  rank0_ = comm.rank() == 0;
  return skip;
}

// A decision on its way to the host: the flag copied into (pinned) host memory, and on CUDA the
// event after the copy.
struct StepGuard::Pending {
  int64_t step;
  torch::Tensor host;
  std::optional<c10::Event> copied;
};

void StepGuard::record(const torch::Tensor& skip, int64_t step) {
  auto pending = std::make_shared<Pending>();
  pending->step = step;
  const bool cuda = skip.is_cuda();
  pending->host = torch::empty({1}, torch::TensorOptions().dtype(torch::kFloat).pinned_memory(cuda));
  pending->host.copy_(skip.reshape({1}), /*non_blocking=*/cuda);
  if (cuda) {
    pending->copied.emplace(c10::DeviceType::CUDA);
    pending->copied->record(c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(skip.device()));
  }
  pending_.push_back(std::move(pending));
}

std::vector<SkipRecord> StepGuard::settle(int64_t up_to_step) {
  std::vector<SkipRecord> skips;
  while (!pending_.empty() && pending_.front()->step <= up_to_step) {
    const std::shared_ptr<Pending> p = pending_.front();
    pending_.erase(pending_.begin());
    if (p->copied) compat::wait_for(*p->copied);
    const bool skip = *p->host.data_ptr<float>() != 0;
    count(skip, p->step, rank0_);  // may throw: the decisions after it are moot then
    if (skip) skips.push_back({p->step, consecutive_, skipped_});
  }
  return skips;
}

void StepGuard::count(bool skipped, int64_t step, bool log) {
  if (!skipped) {
    consecutive_ = 0;
    return;
  }
  ++skipped_;
  ++consecutive_;
  if (log)
    HCL_LOG(warning) << "step " << step << ": non-finite loss or gradients on some rank; step skipped on "
                   << "every rank (" << consecutive_ << " in a row, " << skipped_ << " in all)";
  if (consecutive_ >= max_consecutive_)
    throw AgreedError(detail::concat("non-finite loss or gradients in ", consecutive_,
                                     " consecutive steps (up to step ", step, "; --max-skipped-steps ",
                                     max_consecutive_, "): stopping. Lower --lr, or check the data"));
}

}  // namespace hcl::train
