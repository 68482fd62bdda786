// Fail-fast checks for CUDA runtime and NCCL calls, beside the NCCL backend that makes them;
// include only from GPU-only sources.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "core/check.h"

#define HCL_CHECK_CUDA(call)                                                             \
  do {                                                                                   \
    const cudaError_t hcl_cuda_rc_ = (call);                                             \
    if (hcl_cuda_rc_ != cudaSuccess)                                                     \
      ::hcl::detail::fail_call("CUDA", #call, cudaGetErrorString(hcl_cuda_rc_), __FILE__, \
                               __LINE__);                                                \
  } while (0)

// ncclInProgress is not an error for non-blocking communicators; callers poll for it.
#define HCL_CHECK_NCCL(call)                                                             \
  do {                                                                                   \
    const ncclResult_t hcl_nccl_rc_ = (call);                                            \
    if (hcl_nccl_rc_ != ncclSuccess && hcl_nccl_rc_ != ncclInProgress)                   \
      ::hcl::detail::fail_call("NCCL", #call, ncclGetErrorString(hcl_nccl_rc_), __FILE__, \
                               __LINE__);                                                \
  } while (0)
