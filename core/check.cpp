// Error formatting for the check macros of core/check.h, dist/nccl_check.h and dist/mpi_check.h.
#include "core/check.h"

#include <unistd.h>

#include <sstream>

#include "core/job.h"

namespace hcl::detail {

std::string where_am_i() {
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  const int r = job::rank();
  return "rank " + (r >= 0 ? std::to_string(r) : std::string("?")) + " on host " + host;
}

void fail_call(const char* api, const char* call, const std::string& error, const char* file,
               int line) {
  std::ostringstream msg;
  msg << api << " call failed: " << call << ": " << error << " (" << where_am_i() << ", " << file
      << ":" << line << ")";
  throw Error(msg.str());
}

void fail_assert(const char* condition, const std::string& detail, const char* file, int line) {
  std::ostringstream msg;
  msg << "internal error: " << condition << " does not hold";
  if (!detail.empty()) msg << ": " << detail;
  msg << " (" << where_am_i() << ", " << file << ":" << line << ")";
  throw InternalError(msg.str());
}

}  // namespace hcl::detail
