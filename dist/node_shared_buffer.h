// Memory shared by the ranks of one node, so that large read-only inputs (in-memory datasets) are
// held once per node instead of once per rank. NodeComm is the group of ranks that share a node
// (MPI_COMM_TYPE_SHARED); NodeSharedBuffer is memory created by the group's leader and mapped by
// every rank of the group.
//
// Why an mmap'ed file and not an MPI-3 shared window: the mapping is released by munmap alone, a
// local call, so the buffer can live as long as the last tensor using it, with no collective
// MPI_Win_free at a time each rank reaches differently (during unwinding, at exit).
// Which file: an anonymous memfd of the leader, which the other ranks open through
// /proc/<leader>/fd/<n>. It has no name anywhere, so no crash at any moment can leave it behind:
// the pages go with the last mapping. That needs every rank of the node in the leader's PID
// namespace; where they are not (ranks in separate containers sharing /dev/shm), a named POSIX
// segment in /dev/shm instead, unlinked as soon as every rank has mapped it (a kill in the moment
// between leaves it: its name holds its creator's pid, and the next node leader on this machine
// removes it when that process is gone), its pages reserved up front (posix_fallocate), so that a
// /dev/shm too small is a clear error rather than a SIGBUS at the first write. A memfd is bounded
// by no tmpfs: a size above the node's available memory is refused up front instead.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <string>

namespace hcl::dist {

// The ranks of `parent` that share this node (or, for tests, a pretend node), rank 0 its leader.
// Owns its MPI communicator (freed on destruction; errors return codes, as on its parent).
// Move-only. Creating one is collective over `parent`.
class NodeComm {
 public:
  static NodeComm of_this_node(MPI_Comm parent = MPI_COMM_WORLD);
  // Ranks of `parent` with the same `color` form one pretend node (tests of several nodes).
  static NodeComm by_color(MPI_Comm parent, int color);
  // Every rank of the job, as one group (rank 0 of the world its leader).
  static NodeComm whole_job() { return by_color(MPI_COMM_WORLD, 0); }
  ~NodeComm();
  NodeComm(NodeComm&& other) noexcept;
  NodeComm& operator=(NodeComm&& other) noexcept;
  NodeComm(const NodeComm&) = delete;
  NodeComm& operator=(const NodeComm&) = delete;

  MPI_Comm get() const { return comm_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_leader() const { return rank_ == 0; }

  // Collective over the node. Each rank passes "" or its problem; if any rank has one, every rank
  // throws hcl::Error with the message of the lowest rank that has one. Never leaves a rank waiting.
  void agree(const std::string& problem) const;
  // Collective over the node: the leader's `bytes` bytes at `data` copied to every rank's.
  void broadcast(void* data, size_t bytes) const;
  void broadcast(std::string& text) const;  // the leader's text, any length
  void barrier() const;

 private:
  explicit NodeComm(MPI_Comm comm);
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
};

// `size()` bytes of memory mapped read-write by every rank of a NodeComm: the same physical pages,
// so what one rank writes the others read (after a barrier). Move-only; the destructor unmaps this
// rank's view (local, no communication); the pages are freed when the last rank has unmapped them.
class NodeSharedBuffer {
 public:
  // Collective over `node`: every rank passes the same `bytes` (a mismatch is an error on every
  // rank). The leader creates the memory (zero-filled), every rank maps it. A failure on any rank
  // (more than the node's available memory, or no room in /dev/shm for a named segment: the error
  // names the size and the limit) throws the same hcl::Error on every rank. 0 bytes gives an empty
  // buffer (data() null).
  static NodeSharedBuffer allocate(const NodeComm& node, size_t bytes);
  // The two kinds allocate chooses between (public so that tests run each): the leader's memfd,
  // which every rank must be able to open through /proc, and a named /dev/shm segment.
  static NodeSharedBuffer allocate_anonymous(const NodeComm& node, size_t bytes);
  static NodeSharedBuffer allocate_named(const NodeComm& node, size_t bytes);

  NodeSharedBuffer() = default;
  ~NodeSharedBuffer();
  NodeSharedBuffer(NodeSharedBuffer&& other) noexcept;
  NodeSharedBuffer& operator=(NodeSharedBuffer&& other) noexcept;
  NodeSharedBuffer(const NodeSharedBuffer&) = delete;
  NodeSharedBuffer& operator=(const NodeSharedBuffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  NodeSharedBuffer(void* data, size_t size) : data_(data), size_(size) {}
  void release();
  void* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace hcl::dist
