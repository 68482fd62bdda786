// Checkpoints written in the background: the trainer takes a snapshot (persist/checkpoint.h:
// snapshot_checkpoint; the step loop pauses only for that) and a CheckpointWriter writes it on its
// own thread, atomically and CRC-checked as a synchronous save does. One write at a time: the
// caller waits for the previous one (wait()) before starting the next; the destructor joins an
// unfinished write, so the file is complete (or its .tmp removed) before the writer goes.
#pragma once

#include <functional>
#include <string>
#include <thread>

#include "persist/checkpoint.h"

namespace hcl::persist {

// How one background write ended.
struct WriteOutcome {
  bool started = false;  // false: no write since the last wait()
  std::string path;
  std::string problem;   // the error's message, "" when the file was written
  double seconds = 0;    // serialising, checking and writing
};

class CheckpointWriter {
 public:
  CheckpointWriter() = default;
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // Writes `state` to `path` on a new thread; `on_written` (optional) runs on that thread after a
  // successful write. Only when no write is in flight (wait() first).
  void start(std::string path, CheckpointState state,
             std::function<void(const WriteOutcome&)> on_written = {});
  // Waits for the write in flight, if any, and returns how it ended (started = false if none).
  WriteOutcome wait();

 private:
  std::thread thread_;
  WriteOutcome outcome_;  // written by the thread, read after joining it
};

}  // namespace hcl::persist
