// The check for MPI calls, beside the MPI code (core/ knows nothing of MPI): a failed call throws
// hcl::Error naming the call, MPI's error string, the rank, the host, the file and the line.
#pragma once

#include <mpi.h>

#include "core/check.h"

namespace hcl::detail {
[[noreturn]] void fail_mpi(const char* call, int code, const char* file, int line);
}  // namespace hcl::detail

// Requires MPI_ERRORS_RETURN on the communicator (dist::MpiRuntime sets it on MPI_COMM_WORLD).
#define HCL_CHECK_MPI(call)                                                                          \
  do {                                                                                               \
    const int hcl_mpi_rc_ = (call);                                                                  \
    if (hcl_mpi_rc_ != MPI_SUCCESS) ::hcl::detail::fail_mpi(#call, hcl_mpi_rc_, __FILE__, __LINE__); \
  } while (0)
