// Adam and SGD on LibTorch's fused multi-tensor kernels (_fused_adam_, _fused_sgd_; LibTorch 2.4+):
// one or two kernels update every parameter, the step counts and the learning rate live on the
// device, and a device flag (the finite guard's agreed decision) makes the kernels leave
// parameters and state untouched without the host ever reading it. So a step is CUDA-graph ready:
// no host value is baked into it except the hyper-parameters that never change.
//
// They are subclasses of torch::optim::Adam / SGD with the same options and state layout, so
// checkpoints move freely between them and the foreach / LibTorch optimizers: call
// sync_state_for_save() before saving (copies the device step counts into LibTorch's state, one
// host read) and state_loaded() after loading. Adam's weight decay is L2 (added to the gradient),
// as in torch::optim::Adam.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace hcl::train {

// Whether this LibTorch has the fused kernels with a tensor learning rate and found_inf.
bool fused_optimizers_available();

class FusedAdam : public torch::optim::Adam {
 public:
  // Throws hcl::Error on LibTorch < 2.4, for amsgrad, or for parameters on different devices.
  FusedAdam(const std::vector<torch::Tensor>& params, torch::optim::AdamOptions options);
  torch::Tensor step(LossClosure closure = nullptr) override;
  // `skip`: undefined, or a one-element float tensor on the parameters' device, 1 = leave
  // everything as it is (any other value: apply).
  void step_unless(const torch::Tensor& skip);
  // The device learning rate (a kernel on CUDA: call it outside CUDA-graph capture).
  void set_lr(double lr);
  void sync_state_for_save();
  void state_loaded();

 private:
  torch::Tensor lr_;                  // 0-d float on the parameters' device
  std::vector<torch::Tensor> steps_;  // per parameter, 0-d float on the device
};

class FusedSGD : public torch::optim::SGD {
 public:
  // Throws hcl::Error on LibTorch < 2.4, for dampening != 0, or for parameters on different devices.
  FusedSGD(const std::vector<torch::Tensor>& params, torch::optim::SGDOptions options);
  torch::Tensor step(LossClosure closure = nullptr) override;
  void step_unless(const torch::Tensor& skip);
  void set_lr(double lr);
  void state_loaded();

 private:
  torch::Tensor lr_;
};

}  // namespace hcl::train
