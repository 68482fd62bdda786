// Device choice and the device-wide helpers (the CUDA allocator's figures: cuda_memory.cpp).
#include "core/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include "core/check.h"

namespace hcl {

torch::Device resolve_device(DeviceChoice choice, int local_rank) {
  if (choice == DeviceChoice::Cpu) return torch::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (choice == DeviceChoice::Cuda)
    HCL_REQUIRE(cuda, "--device cuda: no CUDA device is available to this rank");
  if (!cuda) return torch::kCPU;
  const auto count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
}

void synchronize_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void configure_fast_math(const torch::Device& device) {
  if (!device.is_cuda()) return;
  at::globalContext().setFloat32MatmulPrecision("high");  // TF32 matrix products
  at::globalContext().setAllowTF32CuDNN(true);
  at::globalContext().setBenchmarkCuDNN(true);
}

torch::Device set_up_device(DeviceChoice choice, int local_rank, int64_t threads) {
  const torch::Device device = resolve_device(choice, local_rank);
  // The rank's GPU becomes this thread's current device: CUDA calls that name no device (an event,
  // a stream query, NCCL's first collective outside the training step) then go to it, not to GPU 0.
  if (device.is_cuda()) c10::impl::getDeviceGuardImpl(device.type())->setDevice(device);
  if (threads > 0) torch::set_num_threads(static_cast<int>(threads));
  configure_fast_math(device);
  return device;
}

}  // namespace hcl
