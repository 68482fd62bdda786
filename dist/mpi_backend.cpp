// The MPI backend: collectives on CPU tensors with MPI's blocking calls on a duplicated communicator.
#include <climits>

#include "dist/mpi_check.h"
#include "dist/backend.h"

namespace hcl::dist {
namespace {

MPI_Datatype mpi_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kInt: return MPI_INT32_T;
    case torch::kLong: return MPI_INT64_T;
    case torch::kShort: return MPI_INT16_T;
    case torch::kChar: return MPI_INT8_T;
    case torch::kByte: return MPI_UINT8_T;
    case torch::kBool: return MPI_C_BOOL;
    default:
      throw Error(detail::concat("MPI backend: no MPI reduction for dtype ", type,
                                 " (float16/bfloat16 are reduced in float32)"));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg: return MPI_SUM;
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
  }
  return MPI_SUM;
}

bool is_half_precision(const torch::Tensor& t) {
  return t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16;
}

int checked_count(int64_t count, const char* op) {
  HCL_REQUIRE(count <= INT_MAX, op, ": ", count, " elements per rank exceed MPI's int count");
  return static_cast<int>(count);
}

constexpr int kSendrecvTag = 23;

class MpiBackend final : public Backend {
 public:
  explicit MpiBackend(MPI_Comm comm) : comm_(comm) {
    HCL_CHECK_MPI(MPI_Comm_size(comm_, &world_size_));
  }

  const char* name() const override { return "mpi"; }

  void all_reduce(torch::Tensor& tensor, ReduceOp op) override {
    if (is_half_precision(tensor)) {  // no MPI type: reduce a float32 copy
      torch::Tensor wide = tensor.to(torch::kFloat);
      all_reduce(wide, op);
      tensor.copy_(wide);
      return;
    }
    const MPI_Datatype type = mpi_type(tensor.scalar_type());
    // Chunks keep each call's count within MPI's int.
    const int64_t chunk = INT_MAX / 2;
    auto* base = static_cast<char*>(tensor.data_ptr());
    for (int64_t offset = 0; offset < tensor.numel(); offset += chunk) {
      const int count = static_cast<int>(std::min(chunk, tensor.numel() - offset));
      HCL_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, base + offset * tensor.element_size(), count,
                                  type, mpi_op(op), comm_));
    }
    if (op == ReduceOp::Avg) tensor.div_(world_size_);
  }

  void all_gather(const torch::Tensor& input, torch::Tensor& output) override {
    // Plain bytes: no arithmetic, so every dtype (bfloat16 too) travels as is.
    const int bytes = checked_count(input.numel() * input.element_size(), "all_gather");
    HCL_CHECK_MPI(MPI_Allgather(input.data_ptr(), bytes, MPI_BYTE, output.data_ptr(), bytes,
                                MPI_BYTE, comm_));
  }

  void reduce_scatter(const torch::Tensor& input, torch::Tensor& output, ReduceOp op) override {
    if (is_half_precision(input)) {
      torch::Tensor wide_out = torch::empty(output.sizes(), output.options().dtype(torch::kFloat));
      reduce_scatter(input.to(torch::kFloat), wide_out, op);
      output.copy_(wide_out);
      return;
    }
    const int count = checked_count(output.numel(), "reduce_scatter");
    HCL_CHECK_MPI(MPI_Reduce_scatter_block(input.data_ptr(), output.data_ptr(), count,
                                           mpi_type(input.scalar_type()), mpi_op(op), comm_));
    if (op == ReduceOp::Avg) output.div_(world_size_);
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    const int64_t bytes = tensor.numel() * tensor.element_size();
    auto* base = static_cast<char*>(tensor.data_ptr());
    const int64_t chunk = INT_MAX / 2;
    for (int64_t offset = 0; offset < bytes; offset += chunk) {
      const int count = static_cast<int>(std::min(chunk, bytes - offset));
      HCL_CHECK_MPI(MPI_Bcast(base + offset, count, MPI_BYTE, root, comm_));
    }
  }

  void sendrecv(const torch::Tensor& send, int to, torch::Tensor& recv, int from) override {
    // Plain bytes, as all_gather: every dtype travels as is.
    const int bytes = checked_count(send.numel() * send.element_size(), "sendrecv");
    HCL_CHECK_MPI(MPI_Sendrecv(send.data_ptr(), bytes, MPI_BYTE, to, kSendrecvTag, recv.data_ptr(), bytes,
                               MPI_BYTE, from, kSendrecvTag, comm_, MPI_STATUS_IGNORE));
  }

  void barrier() override { HCL_CHECK_MPI(MPI_Barrier(comm_)); }

 private:
  MPI_Comm comm_;
  int world_size_ = 1;
};

}  // namespace

std::unique_ptr<Backend> make_mpi_backend(MPI_Comm comm) {
  return std::make_unique<MpiBackend>(comm);
}

}  // namespace hcl::dist
