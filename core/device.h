// The device of a rank and the device-wide helpers every program uses: choosing the device
// (--device), waiting for queued work, fast math, and the CUDA allocator's peak memory.
#pragma once

#include <torch/torch.h>

#include "core/named_enum.h"

namespace hcl {

enum class DeviceChoice { Auto, Cpu, Cuda };

// The device of a rank: cpu; cuda (an error when this rank sees no CUDA device); or auto: the GPU of
// the local rank (local_rank mod the GPU count) when CUDA is available, else the CPU.
torch::Device resolve_device(DeviceChoice choice, int local_rank);

// Waits for queued device work (CUDA) so a host clock measures it; nothing on CPU.
void synchronize_device(const torch::Device& device);

// CUDA: TF32 for float32 matrix products and convolutions, and cuDNN autotuning (the input shapes of
// a run do not change). Nothing on CPU.
void configure_fast_math(const torch::Device& device);

// A rank's device as every program of hcl sets it up: resolve_device (a GPU becomes the calling
// thread's current device), `threads` CPU threads for LibTorch (0: its default), configure_fast_math.
torch::Device set_up_device(DeviceChoice choice, int local_rank, int64_t threads);

// The most memory LibTorch's CUDA allocator has held on `device` so far, in MiB (core/cuda_memory.cpp;
// throws hcl::Error in a build without CUDA).
double peak_device_memory_mib(const torch::Device& device);
// Starts a new peak for peak_device_memory_mib.
void reset_peak_device_memory(const torch::Device& device);
// What LibTorch's CUDA allocator has reserved on `device` now (allocated or cached), in MiB: a
// block that is never freed for reuse shows here (throws without CUDA).
double device_memory_reserved_mib(const torch::Device& device);

}  // namespace hcl

template <>
struct hcl::EnumNames<hcl::DeviceChoice> {
  static constexpr NamedValue<DeviceChoice> table[] = {
      {DeviceChoice::Auto, "auto", "the local rank's GPU if any"},
      {DeviceChoice::Cpu, "cpu"},
      {DeviceChoice::Cuda, "cuda"},
  };
};
