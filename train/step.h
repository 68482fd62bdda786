// Helpers of the training step: the view-forward mode, and the device (synchronisation, fast math,
// peak memory). The step itself is train::TrainStep (train/train_step.h).
#pragma once

#include <torch/torch.h>

#include <string>

namespace hcl::train {

// One forward per view (the reference: BatchNorm statistics over the B images of a view) or one
// forward over both views (SimCLR's code: statistics over 2B images; faster on a GPU).
enum class ViewForward { PerView, Joint };
ViewForward parse_view_forward(const std::string& name);  // "per-view" or "joint"
const char* to_string(ViewForward mode);

// Waits for queued device work (CUDA) so a host clock measures it; nothing on CPU.
void synchronize_device(const torch::Device& device);

// CUDA: TF32 for float32 matrix products and convolutions, and cuDNN autotuning (the input shapes of
// a run do not change). Nothing on CPU.
void configure_fast_math(const torch::Device& device);

// The most memory LibTorch's CUDA allocator has held on `device` so far, in MiB (train/cuda_memory.cpp;
// throws hcl::Error in a build without CUDA).
double peak_device_memory_mib(const torch::Device& device);
// Starts a new peak for peak_device_memory_mib.
void reset_peak_device_memory(const torch::Device& device);

}  // namespace hcl::train
