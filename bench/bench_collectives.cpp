// Benchmark of dist::Communicator: for each collective and message size (4 KiB to 64 MiB,
// float32), the time, algbw and busbw (nccl-tests' formulas), and on the MPI backend the
// efficiency of our wrapper against a raw MPI call on the same buffer (raw time / wrapper time;
// target >= 0.95), with and without the cross-rank shape check (a per-call option). On a GPU
// machine, the same for NCCL on CUDA tensors. Run under mpirun; rank 0 prints one JSON object.
//   mpirun -np 2 hcl-bench-collectives [--max-mib 64]
#include <iostream>

#include "bench/options.h"
#include "bench/timing.h"
#include "core/device.h"
#include "core/log.h"
#include "core/run_guarded.h"
#include "dist/communicator.h"
#include "dist/version.h"

namespace {

using hcl::dist::Communicator;

const std::vector<std::string> kOps = {"all_reduce", "all_gather", "reduce_scatter", "broadcast"};

// nccl-tests: busbw = algbw x factor, with the message size of the whole operation.
double bus_factor(const std::string& op, int n) {
  if (op == "all_reduce") return 2.0 * (n - 1) / n;
  if (op == "broadcast") return 1.0;
  return static_cast<double>(n - 1) / n;
}

// Seconds per call: the slowest rank's mean over `iters` calls.
double time_op(MPI_Comm comm, const std::function<void()>& call, int iters, const torch::Device& device) {
  for (int i = 0; i < 3; ++i) call();
  hcl::synchronize_device(device);
  MPI_Barrier(comm);
  const double seconds = hcl::bench::seconds_of([&] {
    for (int i = 0; i < iters; ++i) call();
    hcl::synchronize_device(device);
  });
  double slowest = 0;
  MPI_Allreduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
  return slowest / iters;
}

// One collective through the wrapper; `bytes` is the size of the whole operation.
// Outputs are preallocated, as in the raw calls, so both move the same bytes through the same buffers.
std::function<void()> wrapper_call(Communicator& comm, const std::string& op, torch::Tensor& whole,
                                   torch::Tensor& part, torch::Tensor& out, bool check_shape) {
  const hcl::dist::CollectiveOptions call{check_shape};
  if (op == "all_reduce") return [&, call] { comm.all_reduce(whole, hcl::dist::ReduceOp::Sum, call); };
  if (op == "all_gather") return [&, call] { comm.all_gather_into(part, out, call); };
  if (op == "reduce_scatter") return [&, call] { comm.reduce_scatter_into(whole, part, hcl::dist::ReduceOp::Sum, call); };
  return [&, call] { comm.broadcast(whole, 0, call); };
}

std::function<void()> raw_call(MPI_Comm comm, const std::string& op, torch::Tensor& whole,
                               torch::Tensor& part, torch::Tensor& out) {
  const int n_whole = static_cast<int>(whole.numel()), n_part = static_cast<int>(part.numel());
  if (op == "all_reduce")
    return [=] { MPI_Allreduce(MPI_IN_PLACE, whole.data_ptr(), n_whole, MPI_FLOAT, MPI_SUM, comm); };
  if (op == "all_gather")
    return [=] { MPI_Allgather(part.data_ptr(), n_part * 4, MPI_BYTE, out.data_ptr(), n_part * 4, MPI_BYTE, comm); };
  if (op == "reduce_scatter")
    return [=] { MPI_Reduce_scatter_block(whole.data_ptr(), part.data_ptr(), n_part, MPI_FLOAT, MPI_SUM, comm); };
  return [=] { MPI_Bcast(whole.data_ptr(), n_whole * 4, MPI_BYTE, 0, comm); };
}

int bench(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::warning, ""});
  int64_t max_mib = 64;
  namespace po = boost::program_options;
  po::options_description desc("hcl-bench-collectives options");
  desc.add_options()("max-mib", po::value(&max_mib)->default_value(max_mib), "largest message (MiB)");
  if (!hcl::as_input([&] { return hcl::bench::parse_options(argc, argv, "mpirun -np W hcl-bench-collectives [options]", desc); }))
    return 0;
  const int n = mpi.world_size();
  Communicator comm;
  MPI_Comm raw;
  MPI_Comm_dup(MPI_COMM_WORLD, &raw);

  std::vector<torch::Device> devices = {torch::kCPU};
  if (torch::cuda::is_available())
    devices.emplace_back(torch::kCUDA, static_cast<c10::DeviceIndex>(mpi.topology().local_rank % torch::cuda::device_count()));
  nlohmann::json results = nlohmann::json::array();
  for (const torch::Device& device : devices) {
    for (const std::string& op : kOps) {
      for (int64_t bytes = 4 << 10; bytes <= (max_mib << 20); bytes *= 4) {
        const int64_t count = bytes / 4 / n * n;  // divisible by the world size
        torch::Tensor whole = torch::ones({count}, torch::TensorOptions().device(device));
        torch::Tensor part = torch::ones({count / n}, torch::TensorOptions().device(device));
        torch::Tensor out = torch::empty({count}, torch::TensorOptions().device(device));
        const int iters = static_cast<int>(std::clamp<int64_t>((1LL << 30) / bytes, 10, 2000));
        const double size = static_cast<double>(count) * 4;
        nlohmann::json r = {{"op", op}, {"backend", device.is_cuda() ? "nccl" : "mpi"}, {"bytes", size},
                            {"ranks", n}, {"iters", iters}};
        // Variants interleaved over 5 rounds, the best round of each: two ranks share two cores
        // here, and the minimum is the least disturbed measurement.
        const auto ours = wrapper_call(comm, op, whole, part, out, /*check_shape=*/false);
        const auto ours_checked = wrapper_call(comm, op, whole, part, out, /*check_shape=*/true);
        const auto theirs = raw_call(raw, op, whole, part, out);
        double t = 1e30, t_checked = 1e30, t_raw = 1e30;
        for (int round = 0; round < 5; ++round) {
          t = std::min(t, time_op(raw, ours, iters, device));
          t_checked = std::min(t_checked, time_op(raw, ours_checked, iters, device));
          if (device.is_cpu()) t_raw = std::min(t_raw, time_op(raw, theirs, iters, device));
        }
        r["us"] = t * 1e6;
        r["algbw_gbs"] = size / t / 1e9;
        r["busbw_gbs"] = size / t / 1e9 * bus_factor(op, n);
        r["us_with_shape_check"] = t_checked * 1e6;
        if (device.is_cpu()) {
          r["raw_mpi_us"] = t_raw * 1e6;
          r["efficiency"] = t_raw / t;  // target >= 0.95
          r["efficiency_with_shape_check"] = t_raw / t_checked;
        }
        results.push_back(r);
      }
    }
  }
  if (mpi.rank() == 0)
    std::cout << nlohmann::json{{"benchmark", "collectives"}, {"ranks", n}, {"dtype", "float32"},
                                {"results", results}}.dump(2) << std::endl;
  MPI_Comm_free(&raw);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-collectives")) return 0;  // no MPI, no data
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-bench-collectives", [&] { return bench(mpi, argc, argv); });
}
