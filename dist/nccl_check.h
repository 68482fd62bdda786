// Fail-fast checks for CUDA runtime and NCCL calls, beside the NCCL backend that makes them;
// include only from GPU-only sources.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <string>

#include "core/check.h"

#define HCL_CHECK_CUDA(call)                                                             \
  do {                                                                                   \
    const cudaError_t hcl_cuda_rc_ = (call);                                             \
    if (hcl_cuda_rc_ != cudaSuccess)                                                     \
      ::hcl::detail::fail_call("CUDA", #call, cudaGetErrorString(hcl_cuda_rc_), __FILE__, \
                               __LINE__);                                                \
  } while (0)

namespace hcl::detail {
// An NCCL failure in words: the error string and NCCL's own last message (ncclGetLastError), which
// NCCL otherwise prints only under NCCL_DEBUG=WARN, e.g. "Duplicate GPU detected : rank 1 and rank 0
// both on CUDA device 1b000" when two ranks of a node are given one GPU.
inline std::string nccl_failure(ncclResult_t rc) {
  std::string what = ncclGetErrorString(rc);
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && *last != '\0') what += std::string(": ") + last;
  return what;
}
}  // namespace hcl::detail

// ncclInProgress is not an error for non-blocking communicators; callers poll for it.
#define HCL_CHECK_NCCL(call)                                                                       \
  do {                                                                                             \
    const ncclResult_t hcl_nccl_rc_ = (call);                                                      \
    if (hcl_nccl_rc_ != ncclSuccess && hcl_nccl_rc_ != ncclInProgress)                             \
      ::hcl::detail::fail_call("NCCL", #call, ::hcl::detail::nccl_failure(hcl_nccl_rc_), __FILE__, \
                               __LINE__);                                                          \
  } while (0)
