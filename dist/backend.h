// The per-backend interface behind dist::Communicator (one source file per backend: MPI for CPU
// tensors, NCCL for CUDA tensors). Internal to dist/: callers use communicator.h.
//
// Invariant: every rank issues the same collectives, on tensors of the same shape and dtype, in the
// same order. The Communicator front checks shapes (when asked) before a backend sees them.
#pragma once

#include <mpi.h>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>

namespace hcl::dist {

enum class ReduceOp { Sum, Avg, Max, Min };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  // All tensors are contiguous and on the backend's device; `out` is preallocated.
  virtual void all_reduce(torch::Tensor& tensor, ReduceOp op) = 0;
  virtual void all_gather(const torch::Tensor& input, torch::Tensor& output) = 0;
  virtual void reduce_scatter(const torch::Tensor& input, torch::Tensor& output, ReduceOp op) = 0;
  virtual void broadcast(torch::Tensor& tensor, int root) = 0;
  // Point-to-point: sends `send` to rank `to` while receiving `recv` (same byte count) from rank
  // `from`; both may be this rank's ring neighbours at once (no deadlock: one paired exchange).
  virtual void sendrecv(const torch::Tensor& send, int to, torch::Tensor& recv, int from) = 0;
  virtual void barrier() = 0;
  // Collectives recorded into a CUDA graph are not watched one by one (their events belong to the
  // graph); the caller watches each replay instead: the work enqueued so far on the current stream
  // must complete within the timeout. Nothing to do for synchronous backends.
  virtual void watch_enqueued(const char* what) {}
};

// Collectives over `comm` (not owned; must outlive the backend) on CPU tensors.
std::unique_ptr<Backend> make_mpi_backend(MPI_Comm comm);

// An NCCL communicator over the ranks of `comm` (ncclUniqueId broadcast over MPI), on CUDA device
// `device_index`, ordered against LibTorch's current stream. A collective that does not complete
// within `timeout` (or an asynchronous NCCL error) aborts the communicator and ends the process.
// Throws hcl::Error when the project was built without CUDA (dist/cuda_backend_stub.cpp).
std::unique_ptr<Backend> make_nccl_backend(MPI_Comm comm, int device_index,
                                           std::chrono::seconds timeout);

// The NCCL library's version ("2.21.5", from ncclGetVersion), or "not built" without CUDA.
std::string nccl_version();

}  // namespace hcl::dist
