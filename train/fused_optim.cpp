// FusedAdam and FusedSGD: LibTorch's fused kernels behind torch::optim's Adam and SGD state.
#include "train/fused_optim.h"

#include "core/check.h"
#include "core/torch_compat.h"
#include "train/foreach_optim.h"

namespace hcl::train {

#if HCL_TORCH_HAS_FUSED_OPTIMIZERS
namespace {

torch::Device common_device(const std::vector<torch::Tensor>& params, const char* who) {
  HCL_REQUIRE(!params.empty(), who, ": no parameters");
  for (const auto& p : params)
    HCL_REQUIRE(p.device() == params.front().device(), who, ": parameters on ", params.front().device(),
                " and ", p.device(), " (one device per optimizer)");
  return params.front().device();
}

torch::Tensor device_scalar(double value, const torch::Device& device) {
  return torch::full({}, value, torch::TensorOptions().dtype(torch::kFloat).device(device));
}

// 1 - skip, as one list entry per tensor (the step counts advance only on applied steps).
std::vector<torch::Tensor> applied_increments(const torch::Tensor& skip, size_t n, const torch::Device& device) {
  const torch::Tensor one = skip.defined() ? (1 - skip.reshape({}).to(torch::kFloat)) : device_scalar(1.0, device);
  return std::vector<torch::Tensor>(n, one);
}

}  // namespace

bool fused_optimizers_available() { return true; }

FusedAdam::FusedAdam(const std::vector<torch::Tensor>& params, torch::optim::AdamOptions options)
    : torch::optim::Adam(params, options) {
  HCL_REQUIRE(!options.amsgrad(), "FusedAdam: amsgrad is not supported");
  const torch::Device device = common_device(params, "FusedAdam");
  lr_ = device_scalar(options.lr(), device);
  for (size_t i = 0; i < params.size(); ++i) steps_.push_back(device_scalar(0, device));
  state_loaded();  // the state of every parameter exists from the start (zeros, step 0)
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  const torch::Tensor loss = evaluate_closure(closure);
  step_unless({});
  return loss;
}

void FusedAdam::step_unless(const torch::Tensor& skip) {
  torch::NoGradGuard no_grad;
  auto& group = param_groups_.at(0);
  const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
  std::vector<torch::Tensor> params, grads, exp_avg, exp_avg_sq, steps;
  for (size_t i = 0; i < group.params().size(); ++i) {
    const torch::Tensor& p = group.params()[i];
    if (!p.grad().defined()) continue;  // as LibTorch's Adam: no gradient, no update, no step
    HCL_REQUIRE(!p.grad().is_sparse(), "FusedAdam: sparse gradients are not supported");
    auto& state = static_cast<torch::optim::AdamParamState&>(*state_.at(state_key<decltype(state_)>(p)));
    params.push_back(p);
    grads.push_back(p.grad());
    exp_avg.push_back(state.exp_avg());
    exp_avg_sq.push_back(state.exp_avg_sq());
    steps.push_back(steps_[i]);
  }
  if (params.empty()) return;
  at::_foreach_add_(steps, applied_increments(skip, steps.size(), lr_.device()));
  std::optional<torch::Tensor> found_inf;
  if (skip.defined()) found_inf = skip.to(torch::kFloat);
  at::_fused_adam_(params, grads, exp_avg, exp_avg_sq, /*max_exp_avg_sqs=*/{}, steps, lr_,
                   std::get<0>(options.betas()), std::get<1>(options.betas()), options.weight_decay(),
                   options.eps(), /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt, found_inf);
}

void FusedAdam::set_lr(double lr) {
  static_cast<torch::optim::AdamOptions&>(param_groups_.at(0).options()).lr(lr);
  lr_.fill_(lr);
}

void FusedAdam::sync_state_for_save() {
  const auto& params = param_groups_.at(0).params();
  for (size_t i = 0; i < params.size(); ++i) {
    auto& state = static_cast<torch::optim::AdamParamState&>(*state_.at(state_key<decltype(state_)>(params[i])));
    state.step(static_cast<int64_t>(steps_[i].item<float>()));
  }
}

void FusedAdam::state_loaded() {
  torch::NoGradGuard no_grad;
  const auto& params = param_groups_.at(0).params();
  for (size_t i = 0; i < params.size(); ++i) {
    const torch::Tensor& p = params[i];
    auto& state = adam_state_of(state_, p);
    HCL_REQUIRE(state.exp_avg().device() == p.device() && state.exp_avg_sq().device() == p.device(),
                "FusedAdam: optimizer state on ", state.exp_avg().device(), " for a parameter on ", p.device());
    steps_[i].fill_(static_cast<double>(state.step()));
  }
  lr_.fill_(static_cast<const torch::optim::AdamOptions&>(param_groups_.at(0).options()).lr());
}

FusedSGD::FusedSGD(const std::vector<torch::Tensor>& params, torch::optim::SGDOptions options)
    : torch::optim::SGD(params, options) {
  // LibTorch's first step copies the gradient into a new momentum buffer; a zero buffer decayed
  // and added to gives the same value only without dampening.
  HCL_REQUIRE(options.dampening() == 0, "FusedSGD: dampening is not supported");
  lr_ = device_scalar(options.lr(), common_device(params, "FusedSGD"));
  state_loaded();
}

torch::Tensor FusedSGD::step(LossClosure closure) {
  const torch::Tensor loss = evaluate_closure(closure);
  step_unless({});
  return loss;
}

void FusedSGD::step_unless(const torch::Tensor& skip) {
  torch::NoGradGuard no_grad;
  auto& group = param_groups_.at(0);
  const auto& options = static_cast<const torch::optim::SGDOptions&>(group.options());
  std::vector<torch::Tensor> params, grads, buffers;
  for (const torch::Tensor& p : group.params()) {
    if (!p.grad().defined()) continue;
    HCL_REQUIRE(!p.grad().is_sparse(), "FusedSGD: sparse gradients are not supported");
    params.push_back(p);
    grads.push_back(p.grad());
    if (options.momentum() != 0)
      buffers.push_back(
          static_cast<torch::optim::SGDParamState&>(*state_.at(state_key<decltype(state_)>(p))).momentum_buffer());
  }
  if (params.empty()) return;
  std::optional<torch::Tensor> found_inf;
  if (skip.defined()) found_inf = skip.to(torch::kFloat);
  at::_fused_sgd_(params, grads, buffers, options.weight_decay(), options.momentum(), lr_, options.dampening(),
                  options.nesterov(), /*maximize=*/false, /*is_first_step=*/false, /*grad_scale=*/std::nullopt,
                  found_inf);
}

void FusedSGD::set_lr(double lr) {
  static_cast<torch::optim::SGDOptions&>(param_groups_.at(0).options()).lr(lr);
  lr_.fill_(lr);
}

void FusedSGD::state_loaded() {
  torch::NoGradGuard no_grad;
  const auto& options = static_cast<const torch::optim::SGDOptions&>(param_groups_.at(0).options());
  if (options.momentum() != 0)
    for (const torch::Tensor& p : param_groups_.at(0).params()) {
      auto key = state_key<decltype(state_)>(p);
      if (state_.find(key) != state_.end()) continue;
      auto state = std::make_unique<torch::optim::SGDParamState>();
      state->momentum_buffer(torch::zeros_like(p, torch::MemoryFormat::Preserve));
      state_.emplace(key, std::move(state));
    }
  lr_.fill_(options.lr());
}

#else  // LibTorch 1.x: no fused SGD, and Adam's fused kernel takes neither a tensor lr nor CPU tensors.

bool fused_optimizers_available() { return false; }

namespace {
[[noreturn]] void unavailable(const char* who) {
  throw Error(detail::concat(who, ": LibTorch ", TORCH_VERSION, " has no fused optimizer kernels with a "
                             "device learning rate (LibTorch 2.4 or later); use the foreach optimizers"));
}
}  // namespace

FusedAdam::FusedAdam(const std::vector<torch::Tensor>& params, torch::optim::AdamOptions options)
    : torch::optim::Adam(params, options) { unavailable("FusedAdam"); }
torch::Tensor FusedAdam::step(LossClosure) { unavailable("FusedAdam"); }
void FusedAdam::step_unless(const torch::Tensor&) { unavailable("FusedAdam"); }
void FusedAdam::set_lr(double) { unavailable("FusedAdam"); }
void FusedAdam::sync_state_for_save() { unavailable("FusedAdam"); }
void FusedAdam::state_loaded() { unavailable("FusedAdam"); }
FusedSGD::FusedSGD(const std::vector<torch::Tensor>& params, torch::optim::SGDOptions options)
    : torch::optim::SGD(params, options) { unavailable("FusedSGD"); }
torch::Tensor FusedSGD::step(LossClosure) { unavailable("FusedSGD"); }
void FusedSGD::step_unless(const torch::Tensor&) { unavailable("FusedSGD"); }
void FusedSGD::set_lr(double) { unavailable("FusedSGD"); }
void FusedSGD::state_loaded() { unavailable("FusedSGD"); }

#endif

}  // namespace hcl::train
