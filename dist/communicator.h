// dist::Communicator: the one interface for collectives on torch tensors. It follows the tensors'
// device (MPI for CPU tensors, NCCL for CUDA tensors) unless a backend is forced.
//
// Invariant: every rank issues the same collectives in the same order, on tensors of the same shape
// and dtype (reduce_scatter: the same dim 0, divisible by the world size). With the shape check on
// (CommunicatorOptions::check_shapes, or per call through CollectiveOptions), a mismatch is an
// hcl::Error on every rank instead of a hang or silent corruption.
#pragma once

#include <mpi.h>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "core/named_enum.h"
#include "dist/backend.h"
#include "dist/runtime.h"
#include "dist/watchdog.h"

namespace hcl::dist {

enum class BackendChoice { Auto, Mpi, Nccl };
const char* to_string(ReduceOp op);

struct CommunicatorOptions {
  BackendChoice backend = BackendChoice::Auto;
  // Compare each collective's shape and dtype across ranks first (one small MPI all-reduce).
  bool check_shapes = true;
  // A collective still running after this long ends the job (MPI: dist/watchdog.h; NCCL: the
  // backend's watchdog aborts the communicator).
  std::chrono::seconds timeout{300};
};

// Options of one collective call.
struct CollectiveOptions {
  // Compare the shape and dtype across ranks before this call; unset: the communicator's
  // CommunicatorOptions::check_shapes. Every rank must pass the same value.
  std::optional<bool> check_shape;

  // For callers that issue the same shapes on every rank by construction (gradient buckets, a
  // one-element flag): saves the small all-reduce of the check.
  static CollectiveOptions without_shape_check() { return {false}; }
};

class Communicator {
 public:
  // Duplicates `comm` so that the communicator's traffic is its own.
  explicit Communicator(MPI_Comm comm = MPI_COMM_WORLD, CommunicatorOptions options = {});
  // Over every rank of the job.
  explicit Communicator(CommunicatorOptions options) : Communicator(MPI_COMM_WORLD, options) {}
  ~Communicator();
  Communicator(Communicator&& other) noexcept;
  Communicator& operator=(Communicator&& other) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return topology_.rank; }
  int world_size() const { return topology_.world_size; }
  int local_rank() const { return topology_.local_rank; }
  const Topology& topology() const { return topology_; }
  const CommunicatorOptions& options() const { return options_; }

  // In place; Avg divides the sum by the world size (floating-point dtypes only).
  void all_reduce(torch::Tensor& tensor, ReduceOp op = ReduceOp::Sum, const CollectiveOptions& call = {});
  // Concatenation of every rank's tensor along dim 0, rank-major.
  torch::Tensor all_gather(const torch::Tensor& tensor, const CollectiveOptions& call = {});
  // The same into a preallocated contiguous `output` (dim 0 = world size x the input's).
  void all_gather_into(const torch::Tensor& tensor, torch::Tensor& output, const CollectiveOptions& call = {});
  // Dim 0 is split in world_size blocks; rank r receives block r reduced over ranks.
  torch::Tensor reduce_scatter(const torch::Tensor& tensor, ReduceOp op = ReduceOp::Sum,
                               const CollectiveOptions& call = {});
  // The same into a preallocated contiguous `output` (dim 0 = the input's / world size).
  void reduce_scatter_into(const torch::Tensor& tensor, torch::Tensor& output, ReduceOp op = ReduceOp::Sum,
                           const CollectiveOptions& call = {});
  // In place: every rank ends with root's tensor.
  void broadcast(torch::Tensor& tensor, int root = 0, const CollectiveOptions& call = {});
  void barrier();

  // Point-to-point exchange: sends `send` to rank `to` and receives into the preallocated contiguous
  // `recv` (same shape, dtype and device as `send`) from rank `from`. For ring shifts, where every
  // rank calls it at once (so the shape check, itself collective, applies: each rank passes the
  // same shape); `to` and `from` may be this rank (a copy).
  void sendrecv(const torch::Tensor& send, int to, torch::Tensor& recv, int from, const CollectiveOptions& call = {});
  // The ring shift built on it: every rank sends `tensor` to rank + shift and returns what rank -
  // shift sent (shift modulo the world size; 1: to the next rank). Collective.
  torch::Tensor ring_shift(const torch::Tensor& tensor, int shift = 1, const CollectiveOptions& call = {});

  // Per element of `values` (any dtype, on this rank's device): true where some rank holds a
  // different value. Every rank gets the same answer. Collective.
  torch::Tensor differs_across_ranks(const torch::Tensor& values);

  // Puts the work enqueued so far on `device`'s current stream under the collective timeout (a
  // replayed CUDA graph with collectives inside: dist/backend.h). No-op for the CPU.
  void watch_enqueued(const torch::Device& device, const char* what);

  // The backend that a tensor on `device` goes through ("mpi" or "nccl").
  const char* backend_name(const torch::Device& device) const;

  // Logs (rank 0) the backend, world size, ranks per node and every rank's device. Collective.
  void log_startup(const torch::Device& device);

 private:
  Backend& backend_for(const torch::Tensor& tensor, const char* op);
  void release() noexcept;
  void check_same_everywhere(const char* op, const torch::Tensor& tensor, int64_t extra,
                             const CollectiveOptions& call);

  MPI_Comm comm_ = MPI_COMM_NULL;
  CommunicatorOptions options_;
  Topology topology_;
  std::unique_ptr<CollectiveWatchdog> watchdog_;
  std::unique_ptr<Backend> mpi_;
  std::unique_ptr<Backend> nccl_;  // made on the first collective over CUDA tensors
  int nccl_device_ = -1;
};

}  // namespace hcl::dist

template <>
struct hcl::EnumNames<hcl::dist::BackendChoice> {
  static constexpr NamedValue<dist::BackendChoice> table[] = {
      {dist::BackendChoice::Auto, "auto", "by device"},
      {dist::BackendChoice::Mpi, "mpi"},
      {dist::BackendChoice::Nccl, "nccl"},
  };
};
