// What core/ knows of the parallel job without depending on MPI: dist::MpiRuntime registers, while
// MPI is up, how to read this process's rank and how to end every rank of the job. Error messages
// (where_am_i) and run_guarded use them; one-process tools register nothing.
#pragma once

namespace hcl::job {

struct Hooks {
  // This process's rank in the job (-1 when unknown).
  int (*rank)() = nullptr;
  // Ends every rank of the job; should not return.
  void (*abort)(int exit_code) = nullptr;
};

// Installs the hooks (all null: no job). Not meant to race with readers: set at start-up.
void set_hooks(const Hooks& hooks);

// Whether a job runtime has registered itself.
bool running();

// This process's rank, or -1 when no job runtime is registered (or it cannot tell).
int rank();

// Ends the whole job with `exit_code` (every rank), or only this process when there is no job.
// Flushes the log first.
[[noreturn]] void abort(int exit_code);

}  // namespace hcl::job
