// Data parallelism for any module: start-up broadcast and verification of the replicas, and
// gradient averaging over ranks in buckets (about 25 MB, in the reverse order of the parameters,
// as backward produces them).
//
// The gradients are views into the buckets (as PyTorch DDP's gradient_as_bucket_view): each
// parameter's .grad is a slice of its bucket with the parameter's own strides, autograd adds into
// it, the all-reduce averages the bucket in place, and nothing is copied in or out. zero_grad()
// zeroes the buckets (one fill each). At one rank there are no buckets: autograd's .grad is the
// average already, and zero_grad() drops the gradients.
//
// Two ways to run the buckets, chosen by `overlap`:
//  - overlap: a hook after each parameter's gradient accumulation marks it ready; a full bucket's
//    all-reduce starts at once (CUDA: on a communication stream, overlapping the rest of
//    backward). Buckets start strictly in bucket order, so every rank issues the same collectives in
//    the same order even when gradients become ready in a different order.
//  - no overlap: all buckets after backward.
// Either way finish() waits for every bucket. Parameters that got no gradient on a rank count as
// zeros there (no deadlock, same average).
// Gradient accumulation: begin(/*sync=*/false) for the first k-1 micro-batches communicates
// nothing; their gradients add up in .grad and are included when the last micro-batch syncs.
#pragma once

#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "dist/stream_order.h"

namespace hcl::dist {

struct DataParallelOptions {
  TORCH_ARG(int64_t, bucket_bytes) = 25 * 1024 * 1024;
  TORCH_ARG(bool, overlap) = true;
  // Test switch: buckets, gradient views, readiness hooks and bucket all-reduces (over one rank) at
  // one rank too, so that one GPU runs the code that otherwise first runs on a cluster.
  TORCH_ARG(bool, buckets_at_one_rank) = false;
};

class DataParallel {
 public:
  // The module's parameters are bucketed once, here; `comm` and `module` must outlive this object.
  DataParallel(Communicator& comm, torch::nn::Module& module, DataParallelOptions options = {});
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Copies rank 0's parameters and buffers to every rank. Collective.
  void broadcast_from_root();
  // Throws hcl::Error naming the first parameter or buffer that differs across ranks. Collective.
  void verify_replicas();

  // Before a step's first backward: every gradient zero (W > 1: in the buckets) or none (W = 1).
  void zero_grad();
  // Before backward of a micro-batch: sync = whether this backward's gradients are reduced.
  void begin(bool sync = true);
  // After backward (of a syncing micro-batch): every bucket reduced, averages in .grad. Collective.
  void finish();

  // 0 at one rank (unless buckets_at_one_rank).
  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }
  // Seconds spent inside finish() the last time: the communication that backward did not hide.
  double last_wait_seconds() const { return last_wait_seconds_; }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    torch::Tensor buffer;        // flat, this bucket's dtype and device
    size_t ready = 0;            // parameters whose gradient is complete (this step)
  };

  void build_buckets();
  // Points every .grad at its slice of its bucket (again, if something replaced it).
  void attach_gradients();
  void on_ready(size_t param);
  void launch_ready_buckets();
  void launch(Bucket& bucket);

  Communicator* comm_;
  std::vector<torch::Tensor> params_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> buffers_;
  std::vector<std::string> buffer_names_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;   // param -> bucket
  std::vector<size_t> slot_of_;     // param -> position in its bucket
  std::vector<torch::Tensor> views_;  // param -> its .grad: a view into its bucket
  std::vector<bool> ready_;         // param's gradient is complete (this step)
  // The parameters' gradient accumulators, which hold the readiness hooks: a parameter keeps only
  // a weak reference to its own, so without these the hooks would go with the first backward's graph.
  std::vector<decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()))> accumulators_;
  DataParallelOptions options_;
  std::unique_ptr<StreamOrder> order_;
  bool armed_ = false;
  size_t next_launch_ = 0;
  double last_wait_seconds_ = 0;
};

}  // namespace hcl::dist
