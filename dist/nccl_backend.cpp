// The NCCL backend: collectives on CUDA tensors, enqueued on LibTorch's current stream so they are
// ordered with the kernels around them. The communicator is bootstrapped by broadcasting an
// ncclUniqueId over MPI. A watchdog thread polls ncclCommGetAsyncError and the completion of every
// collective; an error or a collective older than the timeout aborts the communicator and the job,
// so a lost rank never leaves the others waiting forever.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>

#include "dist/nccl_check.h"
#include "dist/mpi_check.h"
#include "core/log.h"
#include "dist/backend.h"
#include "dist/runtime.h"

namespace hcl::dist {
namespace {

ncclDataType_t nccl_type(torch::ScalarType type) {
  switch (type) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kInt: return ncclInt32;
    case torch::kLong: return ncclInt64;
    case torch::kChar: return ncclInt8;
    case torch::kByte:
    case torch::kBool: return ncclUint8;
    default: throw Error(detail::concat("NCCL backend: unsupported dtype ", type));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return ncclSum;
    case ReduceOp::Avg: return ncclAvg;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Min: return ncclMin;
  }
  return ncclSum;
}

class NcclBackend final : public Backend {
 public:
  NcclBackend(MPI_Comm mpi_comm, int device, std::chrono::seconds timeout)
      : device_(device), timeout_(timeout) {
    int rank = 0, size = 1;
    HCL_CHECK_MPI(MPI_Comm_rank(mpi_comm, &rank));
    HCL_CHECK_MPI(MPI_Comm_size(mpi_comm, &size));
    ncclUniqueId id;
    if (rank == 0) HCL_CHECK_NCCL(ncclGetUniqueId(&id));
    HCL_CHECK_MPI(MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, mpi_comm));
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device_));
    HCL_CHECK_NCCL(ncclCommInitRank(&comm_, size, id, rank));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclBackend() override {
    stop_ = true;
    if (watchdog_.joinable()) watchdog_.join();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& work : pending_) cudaEventDestroy(work.done);
      pending_.clear();
    }
    if (comm_ != nullptr) ncclCommDestroy(comm_);
  }

  const char* name() const override { return "nccl"; }

  void all_reduce(torch::Tensor& tensor, ReduceOp op) override {
    cudaStream_t stream = current_stream();
    HCL_CHECK_NCCL(ncclAllReduce(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                                 nccl_type(tensor.scalar_type()), nccl_op(op), comm_, stream));
    track(stream, "all_reduce");
  }

  void all_gather(const torch::Tensor& input, torch::Tensor& output) override {
    cudaStream_t stream = current_stream();
    HCL_CHECK_NCCL(ncclAllGather(input.data_ptr(), output.data_ptr(), input.numel(),
                                 nccl_type(input.scalar_type()), comm_, stream));
    track(stream, "all_gather");
  }

  void reduce_scatter(const torch::Tensor& input, torch::Tensor& output, ReduceOp op) override {
    cudaStream_t stream = current_stream();
    HCL_CHECK_NCCL(ncclReduceScatter(input.data_ptr(), output.data_ptr(), output.numel(),
                                     nccl_type(input.scalar_type()), nccl_op(op), comm_, stream));
    track(stream, "reduce_scatter");
  }

  void broadcast(torch::Tensor& tensor, int root) override {
    cudaStream_t stream = current_stream();
    HCL_CHECK_NCCL(ncclBroadcast(tensor.data_ptr(), tensor.data_ptr(), tensor.numel(),
                                 nccl_type(tensor.scalar_type()), root, comm_, stream));
    track(stream, "broadcast");
  }

  // One NCCL group, so the send and the receive progress together (no deadlock in a ring).
  void sendrecv(const torch::Tensor& send, int to, torch::Tensor& recv, int from) override {
    cudaStream_t stream = current_stream();
    const ncclDataType_t type = nccl_type(send.scalar_type());
    HCL_CHECK_NCCL(ncclGroupStart());
    HCL_CHECK_NCCL(ncclSend(send.data_ptr(), send.numel(), type, to, comm_, stream));
    HCL_CHECK_NCCL(ncclRecv(recv.data_ptr(), recv.numel(), type, from, comm_, stream));
    HCL_CHECK_NCCL(ncclGroupEnd());
    track(stream, "sendrecv");
  }

  void barrier() override {
    torch::Tensor one = torch::ones({1}, torch::TensorOptions().device(torch::kCUDA, device_));
    all_reduce(one, ReduceOp::Sum);
    HCL_CHECK_CUDA(cudaStreamSynchronize(current_stream()));
  }

  void watch_enqueued(const char* what) override { track(current_stream(), what); }

 private:
  struct PendingWork {
    cudaEvent_t done;
    std::chrono::steady_clock::time_point enqueued;
    const char* what;
  };

  cudaStream_t current_stream() const {
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device_)).stream();
  }

  // Records completion of the collective just enqueued, for the watchdog. Not while the stream is
  // being captured into a CUDA graph: an event recorded there belongs to the graph and cannot be
  // queried; the graph's replays are watched instead (watch_enqueued).
  void track(cudaStream_t stream, const char* what) {
    // The event is made on the current device, which must be the stream's.
    c10::cuda::CUDAGuard on_device(static_cast<c10::DeviceIndex>(device_));
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    HCL_CHECK_CUDA(cudaStreamIsCapturing(stream, &capture));
    if (capture != cudaStreamCaptureStatusNone) return;
    cudaEvent_t done;
    HCL_CHECK_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    HCL_CHECK_CUDA(cudaEventRecord(done, stream));
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back({done, std::chrono::steady_clock::now(), what});
  }

  void watch() {
    using namespace std::chrono;
    // A new thread starts on GPU 0: its queries would make a context there (memory on another
    // rank's GPU).
    const cudaError_t on_device = cudaSetDevice(device_);
    if (on_device != cudaSuccess)
      die(std::string("the NCCL watchdog cannot select its GPU: ") + cudaGetErrorString(on_device));
    while (!stop_) {
      std::this_thread::sleep_for(milliseconds(100));
      ncclResult_t async_error = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async_error) != ncclSuccess || async_error != ncclSuccess)
        die(std::string("NCCL asynchronous error: ") + ncclGetErrorString(async_error));
      std::lock_guard<std::mutex> lock(mutex_);
      while (!pending_.empty()) {
        PendingWork& front = pending_.front();
        const cudaError_t state = cudaEventQuery(front.done);
        if (state == cudaSuccess) {
          cudaEventDestroy(front.done);
          pending_.pop_front();
          continue;
        }
        if (state != cudaErrorNotReady)
          die(std::string("CUDA error while waiting for NCCL ") + front.what + ": " +
              cudaGetErrorString(state));
        if (steady_clock::now() - front.enqueued > timeout_)
          die(std::string("NCCL ") + front.what + " did not complete within " +
              std::to_string(timeout_.count()) + " s (a rank died or stopped issuing collectives)");
        break;
      }
    }
  }

  [[noreturn]] void die(const std::string& reason) {
    HCL_LOG(fatal) << reason << " (" << detail::where_am_i() << "); aborting the NCCL communicator "
                   << "and the job";
    ncclCommAbort(comm_);
    comm_ = nullptr;
    MpiRuntime::abort_job(1);
  }

  int device_;
  std::chrono::seconds timeout_;
  ncclComm_t comm_ = nullptr;
  std::mutex mutex_;
  std::deque<PendingWork> pending_;
  std::atomic<bool> stop_{false};
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Backend> make_nccl_backend(MPI_Comm comm, int device_index,
                                           std::chrono::seconds timeout) {
  return std::make_unique<NcclBackend>(comm, device_index, timeout);
}

// The loaded library's version: NCCL_VERSION_CODE is major * 10000 + minor * 100 + patch since 2.9.
std::string nccl_version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown (ncclGetVersion failed)";
  const int major = code / 10000, minor = code / 100 % 100, patch = code % 100;
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace hcl::dist
