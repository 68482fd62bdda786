// Benchmark of the gradient synchronisation for a ResNet-18 sized parameter set (CIFAR stem):
// time per step, bucket count and bandwidth; and, with a real forward/backward, the exposed
// communication (not hidden behind backward) as a fraction of the backward time (target on GPU:
// under 10% at 2+ ranks; on CPU the buckets run after backward, so all of it is exposed).
// Run under mpirun; rank 0 prints one JSON object.
//   mpirun -np 2 hcl-bench-data-parallel [--batch 8] [--bucket-mb 25] [--steps 5]
#include <iostream>

#include "bench/options.h"
#include "bench/timing.h"
#include "core/device.h"
#include "core/log.h"
#include "core/run_guarded.h"
#include "dist/data_parallel.h"
#include "dist/version.h"
#include "model/contrastive_model.h"

namespace {

int bench(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::warning, ""});
  int64_t batch = 8, bucket_mb = 25, steps = 5;
  namespace po = boost::program_options;
  po::options_description desc("hcl-bench-data-parallel options");
  desc.add_options()("batch", po::value(&batch)->default_value(batch), "images per rank of the backward runs")(
      "bucket-mb", po::value(&bucket_mb)->default_value(bucket_mb), "gradient bucket size (MB)")(
      "steps", po::value(&steps)->default_value(steps), "timed steps (the median is reported)");
  if (!hcl::as_input([&] { return hcl::bench::parse_options(argc, argv, "mpirun -np W hcl-bench-data-parallel [options]", desc); }))
    return 0;
  const torch::Device device = torch::cuda::is_available()
      ? torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(mpi.topology().local_rank % torch::cuda::device_count()))
      : torch::Device(torch::kCPU);
  hcl::dist::Communicator comm;  // the buckets skip the shape check per call
  torch::manual_seed(0);
  auto encoder = hcl::model::make_encoder(hcl::model::EncoderOptions().arch(hcl::model::Arch::ResNet18));
  encoder->to(device);
  int64_t parameters = 0;
  for (const auto& p : encoder->parameters()) parameters += p.numel();
  const auto sync = [&](bool overlap) {
    return hcl::dist::DataParallelOptions().bucket_bytes(bucket_mb << 20).overlap(overlap);
  };
  hcl::dist::DataParallel dp(comm, *encoder, sync(device.is_cuda()));
  dp.broadcast_from_root();

  // 1. Synchronisation alone: gradients present (views into the buckets), the buckets reduced.
  dp.zero_grad();
  for (auto& p : encoder->parameters()) {
    torch::NoGradGuard no_grad;
    if (p.grad().defined()) p.mutable_grad().normal_();
    else p.mutable_grad() = torch::randn_like(p);
  }
  const double sync_seconds = hcl::bench::median_seconds([&] {
    dp.begin(true);
    dp.finish();
    hcl::synchronize_device(device);
  }, static_cast<int>(steps));

  // 2. Backward alone, then backward with synchronisation: the difference is what was exposed.
  const torch::Tensor images = torch::randn({batch, 3, 32, 32}, torch::TensorOptions().device(device));
  auto backward = [&](bool with_sync) {
    dp.zero_grad();
    const torch::Tensor loss = encoder->forward(images).square().mean();
    hcl::synchronize_device(device);
    MPI_Barrier(MPI_COMM_WORLD);  // both ranks start backward together
    return hcl::bench::seconds_of([&] {
      if (with_sync) dp.begin(true);
      loss.backward();
      if (with_sync) dp.finish();
      hcl::synchronize_device(device);
    });
  };
  std::vector<double> plain, synced;
  backward(false), backward(true);  // warm-up
  for (int64_t i = 0; i < steps; ++i) {
    plain.push_back(backward(false));
    synced.push_back(backward(true));
  }
  std::sort(plain.begin(), plain.end());
  std::sort(synced.begin(), synced.end());
  const double t_plain = plain[plain.size() / 2], t_synced = synced[synced.size() / 2];
  const double bytes = static_cast<double>(parameters) * 4;
  const int n = mpi.world_size();
  if (mpi.rank() == 0)
    std::cout << nlohmann::json{{"benchmark", "gradient synchronisation"},
                                {"device", device.str()}, {"ranks", n}, {"parameters", parameters},
                                {"bucket_mb", bucket_mb}, {"buckets", dp.bucket_count()},
                                {"overlap", device.is_cuda()},
                                {"sync_ms", sync_seconds * 1e3},
                                {"sync_busbw_gbs", bytes / sync_seconds / 1e9 * 2.0 * (n - 1) / n},
                                {"batch", batch}, {"backward_ms", t_plain * 1e3},
                                {"backward_with_sync_ms", t_synced * 1e3},
                                {"exposed_fraction_of_backward", std::max(0.0, t_synced - t_plain) / t_plain}}
                     .dump(2)
              << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-data-parallel")) return 0;  // no MPI, no data
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-bench-data-parallel", [&] { return bench(mpi, argc, argv); });
}
