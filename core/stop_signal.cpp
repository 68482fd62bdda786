// The stop flag of core/stop_signal.h and its signal handlers.
#include "core/stop_signal.h"

#include <atomic>
#include <csignal>

namespace hcl::stop {
namespace {

std::atomic<int> g_requested{0};
static_assert(std::atomic<int>::is_always_lock_free, "the handler needs a lock-free atomic");

extern "C" void on_stop_signal(int signal) {
  int none = 0;
  if (!g_requested.compare_exchange_strong(none, signal) && signal != SIGUSR1) {
    // Asked twice: do what the signal does by default (end the process) now.
    std::signal(signal, SIG_DFL);
    std::raise(signal);
  }
}

}  // namespace

void install_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
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

void request_for_test(int signal) { g_requested.store(signal); }

}  // namespace hcl::stop
