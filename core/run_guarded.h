// The one place where a program's exceptions become exit codes, used by every main() (hcl-train,
// hcl-eval, hcl-export and the benchmarks):
//   InputError   -> exit 2, one line "<program>: error: <what>" on stderr (rank 0 only);
//   AgreedError  -> exit 1 (every rank reached it together), logged once by rank 0, no abort;
//   anything else on one rank -> logged, then the whole job ends with 1 (MPI_Abort through the
//   hook of core/job.h) so that no rank is left waiting; in a one-process tool (no job), one line
//   "<program>: error: <what>" and exit 1.
#pragma once

#include <exception>
#include <functional>
#include <utility>

#include "core/check.h"

namespace hcl {

// Runs `body` and returns its exit code, or the code of what it threw (see above).
int run_guarded(const char* program, const std::function<int()>& body);

// Runs `f` (parsing and checking the user's input) and rethrows whatever it throws as an
// InputError with the same message, so that run_guarded exits 2 for it.
template <typename F>
decltype(auto) as_input(F&& f) {
  try {
    return std::forward<F>(f)();
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw InputError(e.what());
  }
}

}  // namespace hcl
