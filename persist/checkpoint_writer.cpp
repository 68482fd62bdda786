// CheckpointWriter: one std::thread per background write, joined by wait() or the destructor.
#include "persist/checkpoint_writer.h"

#include <chrono>
#include <exception>

#include "core/check.h"

namespace hcl::persist {

CheckpointWriter::~CheckpointWriter() {
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::start(std::string path, CheckpointState state,
                             std::function<void(const WriteOutcome&)> on_written) {
  HCL_ASSERT(!thread_.joinable());
  outcome_ = WriteOutcome{true, std::move(path), "", 0};
  thread_ = std::thread([this, state = std::move(state), on_written = std::move(on_written)] {
    const auto start = std::chrono::steady_clock::now();
    try {
      write_checkpoint(outcome_.path, state);
    } catch (const std::exception& e) {
      outcome_.problem = e.what();
    } catch (...) {
      outcome_.problem = "checkpoint " + outcome_.path + ": unknown error while writing";
    }
    outcome_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (outcome_.problem.empty() && on_written) {
      try {
        on_written(outcome_);
      } catch (...) {  // a report that fails (logging) does not make a written file a failure
      }
    }
  });
}

WriteOutcome CheckpointWriter::wait() {
  if (!thread_.joinable()) return {};
  thread_.join();
  WriteOutcome done = std::move(outcome_);
  outcome_ = {};
  return done;
}

}  // namespace hcl::persist
