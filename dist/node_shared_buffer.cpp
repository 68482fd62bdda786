// NodeComm (the ranks of one node) and NodeSharedBuffer (shared memory mapped by all of them: an
// anonymous memfd, or a named POSIX segment where the ranks do not share a PID namespace).
#include "dist/node_shared_buffer.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <random>
#include <utility>

#include "core/log.h"
#include "dist/mpi_check.h"

namespace hcl::dist {

// ---- NodeComm ----

NodeComm::NodeComm(MPI_Comm comm) : comm_(comm) {
  HCL_CHECK_MPI(MPI_Comm_rank(comm_, &rank_));
  HCL_CHECK_MPI(MPI_Comm_size(comm_, &size_));
}

NodeComm NodeComm::of_this_node(MPI_Comm parent) {
  int rank = 0;
  HCL_CHECK_MPI(MPI_Comm_rank(parent, &rank));
  MPI_Comm comm = MPI_COMM_NULL;
  HCL_CHECK_MPI(MPI_Comm_split_type(parent, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &comm));
  return NodeComm(comm);
}

NodeComm NodeComm::by_color(MPI_Comm parent, int color) {
  int rank = 0;
  HCL_CHECK_MPI(MPI_Comm_rank(parent, &rank));
  MPI_Comm comm = MPI_COMM_NULL;
  HCL_CHECK_MPI(MPI_Comm_split(parent, color, rank, &comm));
  return NodeComm(comm);
}

NodeComm::~NodeComm() {
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);  // nothing to report from a destructor
}

NodeComm::NodeComm(NodeComm&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), rank_(other.rank_), size_(other.size_) {}

NodeComm& NodeComm::operator=(NodeComm&& other) noexcept {
  if (this != &other) {
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    rank_ = other.rank_;
    size_ = other.size_;
  }
  return *this;
}

void NodeComm::agree(const std::string& problem) const {
  int first = problem.empty() ? size_ : rank_;
  HCL_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm_));
  if (first == size_) return;
  std::string text = problem;
  int length = static_cast<int>(text.size());
  HCL_CHECK_MPI(MPI_Bcast(&length, 1, MPI_INT, first, comm_));
  text.resize(static_cast<size_t>(length));
  HCL_CHECK_MPI(MPI_Bcast(text.data(), length, MPI_CHAR, first, comm_));
  throw Error(text);
}

void NodeComm::broadcast(void* data, size_t bytes) const {
  HCL_ASSERT(bytes <= static_cast<size_t>(INT32_MAX), "broadcast of ", bytes, " bytes");
  HCL_CHECK_MPI(MPI_Bcast(data, static_cast<int>(bytes), MPI_BYTE, 0, comm_));
}

void NodeComm::broadcast(std::string& text) const {
  uint64_t length = text.size();
  broadcast(&length, sizeof length);
  text.resize(length);
  broadcast(text.data(), length);
}

void NodeComm::barrier() const { HCL_CHECK_MPI(MPI_Barrier(comm_)); }

// ---- NodeSharedBuffer ----
namespace {

constexpr const char* kShmDir = "/dev/shm";

std::string mib(double bytes) { return detail::concat(static_cast<int64_t>(bytes / (1 << 20)), " MiB"); }

// "/dev/shm: size 64 MiB, free 12 MiB", or "" where /dev/shm cannot be queried.
std::string shm_limits() {
  struct statvfs s {};
  if (statvfs(kShmDir, &s) != 0) return "";
  const double unit = static_cast<double>(s.f_frsize);
  return detail::concat(" (", kShmDir, ": size ", mib(unit * static_cast<double>(s.f_blocks)), ", free ",
                        mib(unit * static_cast<double>(s.f_bavail)), ")");
}

// This process's PID namespace as a number (the inode of /proc/self/ns/pid; "0" where unknown):
// segment names carry it, so that a pid in a name is only ever looked up in its own namespace.
const std::string& pid_namespace() {
  static const std::string ns = [] {
    struct stat s {};
    return std::to_string(stat("/proc/self/ns/pid", &s) == 0 ? static_cast<uint64_t>(s.st_ino) : 0);
  }();
  return ns;
}

// /hcl-<pid namespace>-<pid>-<counter>-<random>: whose it is, for remove_segments_of_dead_processes.
std::string unique_name() {
  static std::atomic<uint64_t> counter{0};
  std::random_device random;
  return detail::concat("/hcl-", pid_namespace(), "-", getpid(), "-", counter++, "-", std::hex, random());
}

// A segment's name is unlinked once every rank has mapped it; a process killed in between (kill -9
// of a node's first rank while it loads) leaves it in /dev/shm. Node leaders remove, once per
// process and before they create one, the segments whose creator (same PID namespace) is gone.
void remove_segments_of_dead_processes() {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  DIR* dir = opendir(kShmDir);
  if (dir == nullptr) return;
  const std::string prefix = "hcl-" + pid_namespace() + "-";
  int removed = 0;
  double bytes = 0;
  std::string pids;
  while (const dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(name.c_str() + prefix.size(), &end, 10);
    if (pid <= 0 || end == nullptr || *end != '-') continue;
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    struct stat s {};
    const double size = stat((std::string(kShmDir) + "/" + name).c_str(), &s) == 0 ? static_cast<double>(s.st_size) : 0;
    if (shm_unlink(("/" + name).c_str()) != 0) continue;
    ++removed;
    bytes += size;
    pids += (pids.empty() ? "" : ", ") + std::to_string(pid);
  }
  closedir(dir);
  if (removed > 0)
    HCL_LOG(warning) << "node-shared memory: removed " << removed << " segment(s) of " << mib(bytes) << " from "
                     << kShmDir << " left by processes that died while loading (pid " << pids << ")";
}

// The memory the kernel says is available (MemAvailable of /proc/meminfo, else free RAM), in bytes.
double available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  double kib = 0;
  while (meminfo >> key >> kib)
    if (key == "MemAvailable:") return kib * 1024;
  struct sysinfo info {};
  return sysinfo(&info) == 0 ? static_cast<double>(info.freeram) * info.mem_unit : 0;
}

// Maps `bytes` bytes of the shared file `fd` read-write; "" or the problem.
std::string map_fd(int fd, size_t bytes, void** data) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    return detail::concat("node-shared memory: mmap of ", bytes, " bytes (", mib(static_cast<double>(bytes)),
                          ") failed: ", std::strerror(errno));
  *data = p;
  return "";
}

// The smallest and the largest of `value` over the ranks of `node` (one all-reduce).
std::pair<int64_t, int64_t> range_over(const NodeComm& node, int64_t value) {
  int64_t range[2] = {value, -value};  // the largest of (v, -v) gives the largest and the smallest
  HCL_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, range, 2, MPI_INT64_T, MPI_MAX, node.get()));
  return {-range[1], range[0]};
}

// An anonymous memfd of `bytes` bytes, mapped read-write; "" or the problem. It has no name in any
// file system: the pages go when the last mapping and descriptor do, whichever way the processes
// end. Its label in /proc/<pid>/maps names the creator, like a named segment's name.
std::string create_anonymous(const std::string& label, size_t bytes, int* fd, void** data) {
  // No tmpfs size bounds a memfd: a size larger than the memory there is would be found only by the
  // OOM killer, so it is refused here.
  if (const double available = available_memory(); available > 0 && static_cast<double>(bytes) > available)
    return detail::concat("node-shared memory: cannot hold ", bytes, " bytes (", mib(static_cast<double>(bytes)),
                          "): only ", mib(available), " of memory available on this node");
  *fd = memfd_create(label.c_str() + 1, MFD_CLOEXEC);
  if (*fd < 0) return detail::concat("node-shared memory: memfd_create failed: ", std::strerror(errno));
  if (ftruncate(*fd, static_cast<off_t>(bytes)) != 0)
    return detail::concat("node-shared memory: ftruncate to ", bytes, " bytes failed: ", std::strerror(errno));
  return map_fd(*fd, bytes, data);
}

// Maps the leader's memfd (its descriptor `fd` in process `pid`, same PID namespace) read-write
// through /proc; "" or the problem.
std::string map_leaders(int64_t pid, int64_t fd, size_t bytes, void** data) {
  const std::string path = detail::concat("/proc/", pid, "/fd/", fd);
  const int mine = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (mine < 0)
    return detail::concat("node-shared memory: cannot open the node leader's memory (", path, "): ", std::strerror(errno),
                          "; --node-shared-data false keeps one copy per rank");
  std::string problem = map_fd(mine, bytes, data);
  close(mine);
  return problem;
}

// Maps the named memory of `bytes` bytes read-write; "" or the problem.
std::string map_named(const std::string& name, size_t bytes, bool create, void** data) {
  const int fd = shm_open(name.c_str(), create ? O_CREAT | O_EXCL | O_RDWR : O_RDWR, 0600);
  if (fd < 0)
    return detail::concat("node-shared memory: shm_open(", name, ") failed: ", std::strerror(errno), shm_limits());
  std::string problem;
  if (create) {
    // Reserves every page now: on a full tmpfs, ENOSPC here rather than SIGBUS at a later write.
    if (const int rc = posix_fallocate(fd, 0, static_cast<off_t>(bytes)); rc != 0)
      problem = detail::concat("node-shared memory: cannot reserve ", bytes, " bytes (", mib(static_cast<double>(bytes)),
                               ") in ", kShmDir, ": ", std::strerror(rc), shm_limits(),
                               "; enlarge /dev/shm (docker run --shm-size=...)");
  }
  if (problem.empty()) problem = map_fd(fd, bytes, data);
  close(fd);
  if (create && !problem.empty()) shm_unlink(name.c_str());
  return problem;
}

}  // namespace

NodeSharedBuffer NodeSharedBuffer::allocate(const NodeComm& node, size_t bytes) {
  if (const auto [least, most] = range_over(node, static_cast<int64_t>(bytes)); least != most)
    throw Error(detail::concat("node-shared memory: the ranks of a node asked for different sizes (from ",
                               least, " to ", most, " bytes); every rank must ask for the same"));
  if (bytes == 0) return {};

  if (node.is_leader()) remove_segments_of_dead_processes();
  // Ranks that all share the leader's PID namespace map its memfd through /proc (nothing named, so
  // nothing a crash could leave); otherwise a named segment, unlinked once every rank has mapped it.
  const auto [least, most] = range_over(node, std::stoll(pid_namespace()));
  return least == most && least != 0 ? allocate_anonymous(node, bytes) : allocate_named(node, bytes);
}

NodeSharedBuffer NodeSharedBuffer::allocate_anonymous(const NodeComm& node, size_t bytes) {
  int fd = -1;
  void* data = nullptr;
  try {
    node.agree(node.is_leader() ? create_anonymous(unique_name(), bytes, &fd, &data) : "");
    int64_t where[2] = {getpid(), fd};  // the leader's
    node.broadcast(where, sizeof where);
    node.agree(node.is_leader() ? "" : map_leaders(where[0], where[1], bytes, &data));
  } catch (...) {
    if (fd >= 0) close(fd);
    if (data != nullptr) munmap(data, bytes);
    throw;
  }
  if (fd >= 0) close(fd);  // every rank has mapped it: the mappings keep the pages
  return NodeSharedBuffer(data, bytes);
}

NodeSharedBuffer NodeSharedBuffer::allocate_named(const NodeComm& node, size_t bytes) {
  std::string name = node.is_leader() ? unique_name() : "";
  void* data = nullptr;
  node.agree(node.is_leader() ? map_named(name, bytes, true, &data) : "");
  node.broadcast(name);
  const std::string problem = node.is_leader() ? "" : map_named(name, bytes, false, &data);
  // Every rank has tried to map it: the name can go (the pages stay while mapped).
  try {
    node.agree(problem);
  } catch (...) {
    if (node.is_leader()) shm_unlink(name.c_str());
    if (data != nullptr) munmap(data, bytes);
    throw;
  }
  if (node.is_leader()) shm_unlink(name.c_str());
  return NodeSharedBuffer(data, bytes);
}

NodeSharedBuffer::~NodeSharedBuffer() { release(); }

NodeSharedBuffer::NodeSharedBuffer(NodeSharedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

NodeSharedBuffer& NodeSharedBuffer::operator=(NodeSharedBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void NodeSharedBuffer::release() {
  if (data_ != nullptr) munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace hcl::dist
