// The CUDA/NCCL backend's stand-in when hcl is built without CUDA (dist/CMakeLists.txt compiles
// this file instead of nccl_backend.cpp and cuda_stream_order.cpp): asking for the NCCL backend or
// a CUDA stream order is an hcl::Error that says how to get a CUDA build.
#include "core/check.h"
#include "dist/backend.h"
#include "dist/stream_order.h"

namespace hcl::dist {

std::unique_ptr<Backend> make_nccl_backend(MPI_Comm, int, std::chrono::seconds) {
  throw Error(
      "the NCCL backend is not available: hcl was built without CUDA (configure against a "
      "CUDA LibTorch, see README)");
}

std::string nccl_version() { return "not built (hcl was built without CUDA)"; }

std::unique_ptr<StreamOrder> make_cuda_stream_order(c10::DeviceIndex) {
  throw Error("CUDA device requested but hcl was built without CUDA");
}

}  // namespace hcl::dist
