// CollectiveWatchdog: one sleeping thread per communicator that checks the collective in flight.
#include "dist/watchdog.h"

#include <cstdlib>
#include <string>

#include "core/check.h"
#include "core/log.h"

namespace hcl::dist {
namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

CollectiveWatchdog::CollectiveWatchdog(std::chrono::seconds timeout) : timeout_(timeout) {
  thread_ = std::thread([this] { watch(); });
}

CollectiveWatchdog::~CollectiveWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

// A collective may call another (a shape check before the data): only the outermost one is timed.
CollectiveWatchdog::Scope::Scope(CollectiveWatchdog& watchdog, const char* what)
    : watchdog_(watchdog), outer_(watchdog.started_ns_.load() == 0) {
  if (!outer_) return;
  watchdog_.what_ = what;
  watchdog_.started_ns_ = now_ns();
}

CollectiveWatchdog::Scope::~Scope() {
  if (outer_) watchdog_.started_ns_ = 0;
}

void CollectiveWatchdog::watch() {
  // A tenth of the timeout (in milliseconds: a few seconds' tenth is not 0), at most 0.5 s.
  const auto poll = std::max(std::chrono::milliseconds(1),
                             std::min(std::chrono::milliseconds(500), std::chrono::milliseconds(timeout_) / 10));
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, poll, [this] { return stop_; })) {
    const int64_t started = started_ns_.load();
    if (started == 0 || now_ns() - started < std::chrono::nanoseconds(timeout_).count()) continue;
    // No MPI call from this thread (the main one is inside MPI): log and end the process; the
    // launcher sees a rank exit without MPI_Finalize and ends the job.
    HCL_LOG(fatal) << "collective " << what_.load() << " did not complete within " << timeout_.count()
                   << " s (" << detail::where_am_i()
                   << "): another rank died, stopped, or issued different collectives; ending the job "
                      "(--collective-timeout sets the limit)";
    log::flush();
    std::_Exit(1);
  }
}

}  // namespace hcl::dist
