// write_file_atomically on POSIX descriptors: open, write, fsync, close, rename, fsync the folder.
#include "core/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/check.h"

namespace hcl {
namespace {

// "<label><file>: <what>: <reason>", as "checkpoint x.pt.tmp: write failed: No space left on device".
std::string failure(const std::string& label, const std::string& file, const char* what, int error) {
  return label + file + ": " + what + ": " + std::strerror(error);
}

// The folder's entry of a rename reaches the disk (best effort: some file systems refuse).
void sync_folder(const std::string& path) {
  const std::string folder = std::filesystem::path(path).parent_path().string();
  const int fd = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void FileSink::write(const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd_, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(errno);
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void FileSink::sync() { ::fsync(fd_); }

void FileSink::fail(int error) const { throw Error(failure(label_, path_, "write failed", error)); }

void write_file_atomically(const std::string& path, const std::function<void(FileSink&)>& fill,
                           const AtomicWriteOptions& options) {
  const std::string tmp = path + options.temporary_suffix;
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(failure(options.label, tmp, "cannot create", errno));
  bool open = true;
  try {
    FileSink sink(fd, tmp, options.label);
    fill(sink);
    if (::fsync(fd) != 0) throw Error(failure(options.label, tmp, "flush failed", errno));
    open = false;
    if (::close(fd) != 0) throw Error(failure(options.label, tmp, "flush failed", errno));
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error(failure(options.label, path, "rename failed", errno));
  } catch (...) {
    if (open) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  sync_folder(path);
}

void write_file_atomically(const std::string& path, std::string_view bytes, const AtomicWriteOptions& options) {
  write_file_atomically(path, [&](FileSink& sink) { sink.write(bytes); }, options);
}

}  // namespace hcl
