// A time limit on blocking collectives. MPI has none of its own: a rank that stopped (SIGSTOP, a
// hung file system, a deadlock) or stopped issuing collectives would leave every other rank
// waiting forever. A watchdog thread per communicator ends this process when one collective has
// been in flight longer than the timeout; the launcher (mpirun, srun) then ends the rest of the job,
// and every other waiting rank's own watchdog fires too.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace hcl::dist {

class CollectiveWatchdog {
 public:
  explicit CollectiveWatchdog(std::chrono::seconds timeout);
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Marks one collective in flight for its lifetime; `what` must be a string literal.
  class Scope {
   public:
    Scope(CollectiveWatchdog& watchdog, const char* what);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    CollectiveWatchdog& watchdog_;
    bool outer_;
  };

 private:
  void watch();

  std::chrono::seconds timeout_;
  // Start of the outermost collective in flight (steady clock, ns; 0: none), and its name.
  std::atomic<int64_t> started_ns_{0};
  std::atomic<const char*> what_{nullptr};
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace hcl::dist
