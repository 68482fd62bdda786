// Fail-fast checks for MPI calls (and the shared error type used by the NCCL and CUDA checks in
// core/gpu_check.h): a failure throws hcl::Error naming the call, the error string, the rank, the
// host, the file and the line.
#pragma once

#include <mpi.h>

#include <stdexcept>
#include <string>

namespace hcl {

// Every error the project raises on purpose; what() is one line meant for a person.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input from the user (configuration, files) found before any work: programs exit with code 2.
class InputError : public Error {
 public:
  using Error::Error;
};

// A failure during the run that every rank reached together (a decision reduced across ranks):
// programs report it once and exit 1 without aborting the job.
class AgreedError : public Error {
 public:
  using Error::Error;
};

namespace detail {
// "rank 3 on host node07" (or "rank ? on host ..." before MPI is initialised).
std::string where_am_i();
[[noreturn]] void fail_call(const char* api, const char* call, const std::string& error,
                            const char* file, int line);
[[noreturn]] void fail_mpi(const char* call, int code, const char* file, int line);
}  // namespace detail
}  // namespace hcl

// Requires MPI_ERRORS_RETURN on the communicator (dist::MpiRuntime sets it on MPI_COMM_WORLD).
#define HCL_CHECK_MPI(call)                                           \
  do {                                                                \
    const int hcl_mpi_rc_ = (call);                                   \
    if (hcl_mpi_rc_ != MPI_SUCCESS)                                   \
      ::hcl::detail::fail_mpi(#call, hcl_mpi_rc_, __FILE__, __LINE__); \
  } while (0)

// Argument checks for user-facing values: throws hcl::Error with the streamed message.
#define HCL_REQUIRE(cond, ...)                                      \
  do {                                                              \
    if (!(cond)) throw ::hcl::Error(::hcl::detail::concat(__VA_ARGS__)); \
  } while (0)

#include <sstream>
namespace hcl::detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace hcl::detail
