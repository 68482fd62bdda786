// The project's error types and its two kinds of checks: HCL_REQUIRE for values that come from the
// user or the caller (a message meant for a person), HCL_ASSERT for internal invariants (a
// programming error: names the condition, the file and the line). The checks of library calls sit
// beside the code that makes them: MPI in dist/mpi_check.h, CUDA and NCCL in dist/nccl_check.h;
// each names the call, the error string, the rank, the host, the file and the line.
#pragma once

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

// A broken internal invariant (HCL_ASSERT): a bug in hcl, not a problem with the input.
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace detail {
// "rank 3 on host node07" (or "rank ? on host ..." outside an MPI job: the rank comes from the hook
// that dist::MpiRuntime registers, see core/job.h).
std::string where_am_i();
// Throws hcl::Error "<api> call failed: <call>: <error> (rank R on host H, file:line)".
[[noreturn]] void fail_call(const char* api, const char* call, const std::string& error,
                            const char* file, int line);
// Throws hcl::InternalError "internal error: <condition> does not hold[: detail] (where, file:line)".
[[noreturn]] void fail_assert(const char* condition, const std::string& detail, const char* file,
                              int line);
}  // namespace detail
}  // namespace hcl

// Checks of values that come from the user or the caller: throws hcl::Error with the streamed
// message (one line meant for a person, naming the option or argument).
#define HCL_REQUIRE(cond, ...)                                      \
  do {                                                              \
    if (!(cond)) throw ::hcl::Error(::hcl::detail::concat(__VA_ARGS__)); \
  } while (0)

// Internal invariants (what hcl's own code guarantees): throws hcl::InternalError naming the
// condition, the file and the line, with the optional streamed detail.
#define HCL_ASSERT(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond))                                                                           \
      ::hcl::detail::fail_assert(#cond, ::hcl::detail::concat(__VA_ARGS__), __FILE__, __LINE__); \
  } while (0)

#include <sstream>
namespace hcl::detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  if constexpr (sizeof...(Parts) > 0) (out << ... << parts);
  return out.str();
}
}  // namespace hcl::detail
