// Error formatting for the check macros of core/check.h and core/gpu_check.h.
#include "core/check.h"

#include <unistd.h>

#include <sstream>

namespace hcl::detail {

std::string where_am_i() {
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  std::string rank = "?";
  if (initialized && !finalized) {
    int r = 0;
    if (MPI_Comm_rank(MPI_COMM_WORLD, &r) == MPI_SUCCESS) rank = std::to_string(r);
  }
  return "rank " + rank + " on host " + host;
}

void fail_call(const char* api, const char* call, const std::string& error, const char* file,
               int line) {
  std::ostringstream msg;
  msg << api << " call failed: " << call << ": " << error << " (" << where_am_i() << ", " << file
      << ":" << line << ")";
  throw Error(msg.str());
}

void fail_mpi(const char* call, int code, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  fail_call("MPI", call, length > 0 ? std::string(text, length) : "error " + std::to_string(code),
            file, line);
}

}  // namespace hcl::detail
