// dist::Communicator: backend dispatch by device, shape checks across ranks, start-up log.
#include "dist/communicator.h"

#include <cstring>
#include <sstream>
#include <utility>
#include <vector>

#include "dist/mpi_check.h"
#include "core/log.h"

namespace hcl::dist {
namespace {

std::string shape_string(const int64_t* dims, int64_t ndim) {
  std::ostringstream out;
  out << "[";
  for (int64_t i = 0; i < ndim; ++i) out << (i ? ", " : "") << dims[i];
  out << "]";
  return out.str();
}

constexpr int64_t kMaxDims = 8;

}  // namespace

const char* to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
  }
  return "?";
}

Communicator::Communicator(MPI_Comm comm, CommunicatorOptions options) : options_(options) {
  HCL_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
  HCL_CHECK_MPI(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  topology_ = query_topology(comm_);
  mpi_ = make_mpi_backend(comm_);
  watchdog_ = std::make_unique<CollectiveWatchdog>(options_.timeout);
}

Communicator::~Communicator() { release(); }

void Communicator::release() noexcept {
  nccl_.reset();
  mpi_.reset();
  watchdog_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (comm_ != MPI_COMM_NULL && !finalized) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
}

Communicator::Communicator(Communicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      options_(other.options_),
      topology_(other.topology_),
      watchdog_(std::move(other.watchdog_)),
      mpi_(std::move(other.mpi_)),
      nccl_(std::move(other.nccl_)),
      nccl_device_(other.nccl_device_) {}

Communicator& Communicator::operator=(Communicator&& other) noexcept {
  if (this != &other) {
    release();
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    options_ = other.options_;
    topology_ = other.topology_;
    watchdog_ = std::move(other.watchdog_);
    mpi_ = std::move(other.mpi_);
    nccl_ = std::move(other.nccl_);
    nccl_device_ = other.nccl_device_;
  }
  return *this;
}

const char* Communicator::backend_name(const torch::Device& device) const {
  BackendChoice backend = options_.backend;
  if (backend == BackendChoice::Auto) backend = device.is_cuda() ? BackendChoice::Nccl : BackendChoice::Mpi;
  return name_of(backend);
}

void Communicator::watch_enqueued(const torch::Device& device, const char* what) {
  if (device.is_cuda() && nccl_) nccl_->watch_enqueued(what);
}

Backend& Communicator::backend_for(const torch::Tensor& tensor, const char* op) {
  HCL_ASSERT(tensor.defined(), op, ": undefined tensor");
  const bool use_nccl = std::string(backend_name(tensor.device())) == "nccl";
  if (!use_nccl) {
    HCL_REQUIRE(tensor.device().is_cpu(), op, ": the MPI backend needs CPU tensors, got ",
                tensor.device(), " (use the NCCL backend for CUDA tensors)");
    return *mpi_;
  }
  HCL_REQUIRE(tensor.device().is_cuda(), op, ": the NCCL backend needs CUDA tensors, got ",
              tensor.device());
  if (!nccl_) {
    nccl_device_ = tensor.device().index();
    nccl_ = make_nccl_backend(comm_, nccl_device_, options_.timeout);
  }
  HCL_ASSERT(tensor.device().index() == nccl_device_, op, ": tensor on ", tensor.device(),
             " but this rank's NCCL communicator is on cuda:", nccl_device_);
  return *nccl_;
}

// Compares (op, extra, dtype, shape) across ranks with one all-reduce of the values and their
// negations under MAX: equal everywhere exactly when max == -max(-v) for every entry.
void Communicator::check_same_everywhere(const char* op, const torch::Tensor& tensor,
                                         int64_t extra, const CollectiveOptions& call) {
  if (!call.check_shape.value_or(options_.check_shapes) || topology_.world_size == 1) return;
  const int64_t ndim = tensor.dim();
  HCL_REQUIRE(ndim <= kMaxDims, op, ": tensors of more than ", kMaxDims, " dimensions");
  const int64_t n = 3 + kMaxDims;
  std::vector<int64_t> buffer(2 * n, 0);
  buffer[0] = extra;
  buffer[1] = static_cast<int64_t>(tensor.scalar_type());
  buffer[2] = ndim;
  for (int64_t i = 0; i < ndim; ++i) buffer[3 + i] = tensor.size(i);
  for (int64_t i = 0; i < n; ++i) buffer[n + i] = -buffer[i];
  std::vector<int64_t> local(buffer.begin(), buffer.begin() + n);
  HCL_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, buffer.data(), static_cast<int>(2 * n), MPI_INT64_T,
                              MPI_MAX, comm_));
  bool same = true;
  for (int64_t i = 0; i < n; ++i) same = same && buffer[i] == -buffer[n + i];
  if (same) return;
  std::vector<int64_t> smallest(n);
  for (int64_t i = 0; i < n; ++i) smallest[i] = -buffer[n + i];
  std::ostringstream msg;
  msg << op << ": ranks disagree on the tensor (every rank must pass the same shape and dtype): "
      << "rank " << topology_.rank << " has " << tensor.scalar_type() << " "
      << shape_string(&local[3], ndim);
  if (buffer[1] != smallest[1]) msg << "; dtypes differ across ranks";
  if (buffer[0] != smallest[0]) msg << "; roots or operations differ across ranks";
  if (buffer[2] == smallest[2])
    msg << "; per-dimension largest " << shape_string(&buffer[3], buffer[2]) << ", smallest "
        << shape_string(&smallest[3], smallest[2]);
  else
    msg << "; ranks differ in the number of dimensions";
  throw Error(msg.str());
}

void Communicator::all_reduce(torch::Tensor& tensor, ReduceOp op, const CollectiveOptions& call) {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "all_reduce");
  Backend& backend = backend_for(tensor, "all_reduce");
  HCL_REQUIRE(op != ReduceOp::Avg || tensor.is_floating_point(),
              "all_reduce: avg needs a floating-point tensor, got ", tensor.scalar_type());
  check_same_everywhere("all_reduce", tensor, static_cast<int64_t>(op), call);
  if (tensor.is_contiguous()) {
    backend.all_reduce(tensor, op);
    return;
  }
  torch::Tensor contiguous = tensor.contiguous();
  backend.all_reduce(contiguous, op);
  tensor.copy_(contiguous);
}

namespace {
std::vector<int64_t> scaled_dim0(const torch::Tensor& t, int64_t numerator, int64_t denominator) {
  std::vector<int64_t> shape = t.sizes().vec();
  shape[0] = shape[0] * numerator / denominator;
  return shape;
}

// The collectives along dim 0: all_gather needs one; reduce_scatter needs it divisible by the world.
void require_gatherable(const torch::Tensor& t) {
  HCL_REQUIRE(t.defined() && t.dim() >= 1, "all_gather: needs at least one dimension (gathered along dim 0)");
}

void require_scatterable(const torch::Tensor& t, int world_size) {
  const bool has_dim0 = t.defined() && t.dim() >= 1;
  HCL_REQUIRE(has_dim0 && t.size(0) % world_size == 0, "reduce_scatter: dim 0 (", has_dim0 ? t.size(0) : 0,
              ") must be divisible by the world size (", world_size, ")");
}

void check_output(const char* op, const torch::Tensor& input, const torch::Tensor& output,
                  const std::vector<int64_t>& shape) {
  HCL_REQUIRE(output.defined() && output.is_contiguous() && output.sizes() == shape &&
                  output.scalar_type() == input.scalar_type() && output.device() == input.device(),
              op, ": output must be a contiguous ", input.scalar_type(), " tensor of shape ",
              torch::IntArrayRef(shape), " on ", input.device());
}
}  // namespace

torch::Tensor Communicator::all_gather(const torch::Tensor& tensor, const CollectiveOptions& call) {
  require_gatherable(tensor);
  torch::Tensor output = torch::empty(scaled_dim0(tensor, topology_.world_size, 1), tensor.options());
  all_gather_into(tensor, output, call);
  return output;
}

void Communicator::all_gather_into(const torch::Tensor& tensor, torch::Tensor& output,
                                   const CollectiveOptions& call) {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "all_gather");
  Backend& backend = backend_for(tensor, "all_gather");
  require_gatherable(tensor);
  check_output("all_gather", tensor, output, scaled_dim0(tensor, topology_.world_size, 1));
  check_same_everywhere("all_gather", tensor, -1, call);
  backend.all_gather(tensor.contiguous(), output);
}

torch::Tensor Communicator::reduce_scatter(const torch::Tensor& tensor, ReduceOp op,
                                           const CollectiveOptions& call) {
  require_scatterable(tensor, topology_.world_size);
  torch::Tensor output = torch::empty(scaled_dim0(tensor, 1, topology_.world_size), tensor.options());
  reduce_scatter_into(tensor, output, op, call);
  return output;
}

void Communicator::reduce_scatter_into(const torch::Tensor& tensor, torch::Tensor& output, ReduceOp op,
                                       const CollectiveOptions& call) {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "reduce_scatter");
  Backend& backend = backend_for(tensor, "reduce_scatter");
  require_scatterable(tensor, topology_.world_size);
  HCL_REQUIRE(op != ReduceOp::Avg || tensor.is_floating_point(),
              "reduce_scatter: avg needs a floating-point tensor, got ", tensor.scalar_type());
  check_output("reduce_scatter", tensor, output, scaled_dim0(tensor, 1, topology_.world_size));
  check_same_everywhere("reduce_scatter", tensor, static_cast<int64_t>(op), call);
  backend.reduce_scatter(tensor.contiguous(), output, op);
}

void Communicator::broadcast(torch::Tensor& tensor, int root, const CollectiveOptions& call) {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "broadcast");
  Backend& backend = backend_for(tensor, "broadcast");
  HCL_REQUIRE(root >= 0 && root < topology_.world_size, "broadcast: root ", root,
              " outside [0, ", topology_.world_size, ")");
  check_same_everywhere("broadcast", tensor, root, call);
  if (tensor.is_contiguous()) {
    backend.broadcast(tensor, root);
    return;
  }
  torch::Tensor contiguous = tensor.contiguous();
  backend.broadcast(contiguous, root);
  tensor.copy_(contiguous);
}

void Communicator::sendrecv(const torch::Tensor& send, int to, torch::Tensor& recv, int from,
                            const CollectiveOptions& call) {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "sendrecv");
  Backend& backend = backend_for(send, "sendrecv");
  const int world = topology_.world_size;
  HCL_REQUIRE(to >= 0 && to < world && from >= 0 && from < world, "sendrecv: peers ", to, " (to) and ",
              from, " (from) must be ranks in [0, ", world, ")");
  check_output("sendrecv", send, recv, send.sizes().vec());
  check_same_everywhere("sendrecv", send, -2, call);
  if (to == topology_.rank && from == topology_.rank) {
    recv.copy_(send);
    return;
  }
  backend.sendrecv(send.contiguous(), to, recv, from);
}

torch::Tensor Communicator::ring_shift(const torch::Tensor& tensor, int shift, const CollectiveOptions& call) {
  HCL_REQUIRE(tensor.defined(), "ring_shift: undefined tensor");
  const int world = topology_.world_size;
  const int step = ((shift % world) + world) % world;
  torch::Tensor received = torch::empty(tensor.sizes(), tensor.options());
  sendrecv(tensor, (topology_.rank + step) % world, received, (topology_.rank - step + world) % world, call);
  return received;
}

void Communicator::barrier() {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "barrier");
  mpi_->barrier();
}

// The values and their negations under one MAX all-reduce: a value is the same everywhere exactly
// when its maximum equals minus the maximum of its negation (its minimum).
torch::Tensor Communicator::differs_across_ranks(const torch::Tensor& values) {
  const torch::Tensor flat = values.flatten();
  torch::Tensor both = torch::cat({flat, -flat});
  all_reduce(both, ReduceOp::Max);
  const int64_t n = flat.numel();
  return both.narrow(0, 0, n).ne(-both.narrow(0, n, n)).view_as(values);
}

void Communicator::log_startup(const torch::Device& device) {
  const CollectiveWatchdog::Scope in_flight(*watchdog_, "log_startup");
  // Every rank's device string, gathered to all (fixed width keeps it one collective).
  constexpr int kWidth = 96;
  std::string mine = topology_.host + " " + device.str();
  mine.resize(kWidth, '\0');
  std::vector<char> all(static_cast<size_t>(kWidth) * topology_.world_size);
  HCL_CHECK_MPI(MPI_Allgather(mine.data(), kWidth, MPI_CHAR, all.data(), kWidth, MPI_CHAR, comm_));
  HCL_LOG(info) << "distributed: backend " << backend_name(device) << ", " << topology_.world_size
                << " ranks on " << topology_.node_count << " node(s), " << topology_.local_size
                << " rank(s) on this node";
  for (int r = 0; r < topology_.world_size; ++r)
    HCL_LOG(info) << "  rank " << r << ": " << std::string(all.data() + r * kWidth, strnlen(all.data() + r * kWidth, kWidth));
}

}  // namespace hcl::dist
