// Graceful stops (preemption, time limits, Ctrl-C): SIGTERM, SIGINT and SIGUSR1 only record that a
// stop was asked for; the trainer polls the flag at step boundaries, agrees on it across ranks,
// writes a checkpoint and exits with kExitStopped. While a stop is pending, a second SIGINT ends
// the process at once (the default action), so a stuck run can still be interrupted; a second
// SIGTERM does so only kTermRepeatSeconds or more after the first request: Slurm sends SIGTERM,
// SIGCONT, SIGTERM within milliseconds (time limit, scancel, preemption), and that must not kill
// a job that is writing its checkpoint. SIGUSR1 never ends the process.
#pragma once

namespace hcl::stop {

// Exit code of a run that stopped on a signal after writing a resumable checkpoint.
constexpr int kExitStopped = 3;

// A SIGTERM this many seconds or more after the first stop request ends the process at once.
constexpr int kTermRepeatSeconds = 5;

// Installs the handlers (async-signal-safe: they store the signal number in a lock-free atomic).
void install_handlers();

// The signal that asked for a stop on this process (SIGTERM, SIGINT or SIGUSR1), or 0.
int requested();

// "SIGTERM", "SIGINT", "SIGUSR1", or "a signal".
const char* name(int signal);

// For tests: as if `signal` had been received (0 clears).
void request_for_test(int signal);

}  // namespace hcl::stop
