// Error formatting for HCL_CHECK_MPI (dist/mpi_check.h).
#include "dist/mpi_check.h"

#include <string>

namespace hcl::detail {

void fail_mpi(const char* call, int code, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  fail_call("MPI", call, length > 0 ? std::string(text, length) : "error " + std::to_string(code), file,
            line);
}

}  // namespace hcl::detail
