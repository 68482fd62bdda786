// Whole files that no crash, full disk or concurrent reader sees half written: the bytes go to a
// temporary file beside the target, are flushed to the disk (fsync), and the temporary file is
// renamed over the target, then the folder is flushed too (so the rename survives a crash). Any
// failure throws hcl::Error naming the file, the stage and the reason, and removes the temporary
// file (it would keep a full disk full). The one way hcl writes checkpoints, exports, config.json,
// hcl-eval's results and the image-index cache.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace hcl {

struct AtomicWriteOptions {
  // Starts every error message ("checkpoint " gives "checkpoint <file>: write failed: <reason>").
  std::string label;
  // The temporary file is the target's name plus this (several processes that may write the same
  // file at once each need their own: add the pid).
  std::string temporary_suffix = ".tmp";
};

// Where the bytes of an atomic write go: the open temporary file.
class FileSink {
 public:
  FileSink(int fd, std::string path, std::string label) : fd_(fd), path_(std::move(path)), label_(std::move(label)) {}
  // Writes all of it; throws hcl::Error "<label><temporary file>: write failed: <reason>".
  void write(const char* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // Flushes what is written so far to the disk (the fault tests' "killed mid-write").
  void sync();
  // Throws the error a failed write with `error` (an errno value) would throw.
  [[noreturn]] void fail(int error) const;

 private:
  int fd_;
  std::string path_, label_;
};

// `fill` writes the file's bytes through the sink.
void write_file_atomically(const std::string& path, const std::function<void(FileSink&)>& fill,
                           const AtomicWriteOptions& options = {});
void write_file_atomically(const std::string& path, std::string_view bytes, const AtomicWriteOptions& options = {});

}  // namespace hcl
