// The job hooks of core/job.h: two function pointers, set by dist::MpiRuntime.
#include "core/job.h"

#include <atomic>
#include <cstdlib>

#include "core/log.h"

namespace hcl::job {
namespace {
std::atomic<int (*)()> g_rank{nullptr};
std::atomic<void (*)(int)> g_abort{nullptr};
}  // namespace

void set_hooks(const Hooks& hooks) {
  g_rank.store(hooks.rank);
  g_abort.store(hooks.abort);
}

bool running() { return g_rank.load() != nullptr; }

int rank() {
  int (*query)() = g_rank.load();
  return query ? query() : -1;
}

void abort(int exit_code) {
  log::flush();
  if (void (*end_job)(int) = g_abort.load()) end_job(exit_code);
  std::_Exit(exit_code);
}

}  // namespace hcl::job
