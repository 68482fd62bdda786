// The stop flag of core/stop_signal.h and its signal handlers.
#include "core/stop_signal.h"

#include <atomic>
#include <csignal>
#include <cstdint>
#include <ctime>

namespace hcl::stop {
namespace {

std::atomic<int> g_requested{0};
std::atomic<int64_t> g_first_ns{0};  // CLOCK_MONOTONIC time of the first stop request
static_assert(std::atomic<int>::is_always_lock_free, "the handler needs a lock-free atomic");
static_assert(std::atomic<int64_t>::is_always_lock_free, "the handler needs a lock-free atomic");

int64_t monotonic_ns() {  // clock_gettime is async-signal-safe
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

extern "C" void on_stop_signal(int signal) {
  const int64_t now = monotonic_ns();
  int none = 0;
  if (g_requested.compare_exchange_strong(none, signal)) {
    g_first_ns.store(now);
    return;
  }
  // Asked again while stopping. A repeated SIGTERM within kTermRepeatSeconds is the same stop
  // said twice (slurmstepd sends SIGTERM, SIGCONT, SIGTERM within milliseconds at a time limit,
  // scancel and preemption likewise): ignored. A second SIGINT (Ctrl-C twice), or a SIGTERM that
  // comes later, ends the process now with the signal's default action.
  const bool escalate =
      signal == SIGINT ||
      (signal == SIGTERM && now - g_first_ns.load() >= int64_t{kTermRepeatSeconds} * 1000000000);
  if (escalate) {
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

}  // namespace

void install_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);  // one handler at a time: the first request and its time are one
  for (int signal : {SIGTERM, SIGINT, SIGUSR1}) sigaddset(&action.sa_mask, signal);
  action.sa_flags = SA_RESTART;  // blocking calls (MPI, file I/O) go on; the flag is polled
  for (int signal : {SIGTERM, SIGINT, SIGUSR1}) sigaction(signal, &action, nullptr);
}

int requested() { return g_requested.load(); }

const char* name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

void request_for_test(int signal) {
  g_requested.store(signal);
  g_first_ns.store(signal != 0 ? monotonic_ns() : 0);
}

}  // namespace hcl::stop
