// Benchmark of the global-batch objective in its forms, all-gather and ring (forward + backward,
// hard estimator, dimension 128), under mpirun on the MPI backend: per rank the median time, the
// time of the form's transfers alone (on the CPU the MPI backend runs them inline, so all of it is
// exposed), and the memory of the first run in a fresh process (so each form's peak is its own: run
// one form per mpirun): the peak bytes of live tensors above those before it (bench/tensor_memory.h)
// and the growth of peak resident memory. Prints one JSON object (rank 0); every figure is the
// largest over ranks.
//   mpirun -np W hcl-bench-ring-objective --form allgather|ring|ring-keep --views 2N [--repeats 3] [--chunk 0]
#include <iostream>

#include "bench/options.h"
#include "bench/tensor_memory.h"
#include "bench/timing.h"
#include "core/run_guarded.h"
#include "dist/runtime.h"
#include "dist/version.h"
#include "train/global_objective.h"

namespace {

using hcl::train::ObjectiveComm;

struct Setup {
  ObjectiveComm form = ObjectiveComm::AllGather;
  int64_t views = 4096, chunk = 0;
  int repeats = 3;
};

// One forward + backward on this rank's 2B views.
void run_once(hcl::dist::Communicator& comm, const Setup& s, const torch::Tensor& local) {
  const int64_t b = local.size(0) / 2;
  torch::Tensor z1 = local.narrow(0, 0, b).clone().requires_grad_(true);
  torch::Tensor z2 = local.narrow(0, b, b).clone().requires_grad_(true);
  const auto options = hcl::loss::ObjectiveOptions().column_chunk(s.chunk).with_stats(false).check_values(false);
  hcl::train::global_objective(comm, z1, z2, options, s.form).loss.backward();
}

// The form's transfers without the objective: all-gather + reduce-scatter of the 2WB x d views; or
// the ring's W - 1 shifts of a block forward, then backward W - 1 of a block with its gradient and
// one of a gradient (ring), or W - 1 of a gradient (ring-keep).
void transfers_once(hcl::dist::Communicator& comm, const Setup& s, const torch::Tensor& local) {
  const auto call = hcl::dist::CollectiveOptions::without_shape_check();
  const int w = comm.world_size();
  if (s.form == ObjectiveComm::AllGather) {
    const torch::Tensor all = comm.all_gather(local, call);
    comm.reduce_scatter(all, hcl::dist::ReduceOp::Sum, call);
    return;
  }
  for (int k = 0; k + 1 < w; ++k) comm.ring_shift(local, 1, call);
  if (s.form == ObjectiveComm::RingKeep) {
    for (int k = 0; k + 1 < w; ++k) comm.ring_shift(local, 1, call);
    return;
  }
  const torch::Tensor pair = torch::cat({local, local}, 0);
  for (int k = 0; k + 1 < w; ++k) comm.ring_shift(pair, 1, call);
  comm.ring_shift(local, 1, call);
}

// The largest value over ranks (every rank gets it).
double max_over_ranks(hcl::dist::Communicator& comm, double value) {
  torch::Tensor t = torch::tensor({value}, torch::kDouble);
  comm.all_reduce(t, hcl::dist::ReduceOp::Max);
  return t.item<double>();
}

double median_ms(hcl::dist::Communicator& comm, int repeats, const std::function<void()>& work) {
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    comm.barrier();
    ms.push_back(max_over_ranks(comm, hcl::bench::seconds_of(work) * 1000));
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int bench(int argc, char** argv) {
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  Setup s;
  std::string form = "allgather";
  namespace po = boost::program_options;
  po::options_description desc("hcl-bench-ring-objective options");
  desc.add_options()("form", po::value(&form)->default_value(form), "allgather, ring or ring-keep")(
      "views", po::value(&s.views)->default_value(s.views), "global views 2N (2 W B; W divides N)")(
      "chunk", po::value(&s.chunk)->default_value(s.chunk), "column chunk (0: none)")(
      "repeats", po::value(&s.repeats)->default_value(s.repeats),
      "timed runs after the first (median; 0: the first run's time, for the largest sizes)");
  hcl::dist::Communicator comm;
  const int w = comm.world_size();
  const bool run = hcl::as_input([&] {
    if (!hcl::bench::parse_options(argc, argv, "mpirun -np W hcl-bench-ring-objective [options]", desc)) return false;
    s.form = hcl::parse<ObjectiveComm>("form", form);
    HCL_REQUIRE(s.views % (2 * w) == 0 && s.views / w >= 4, "--views: ", s.views,
                " must be 2 W B with B >= 2 (W = ", w, ")");
    HCL_REQUIRE(s.repeats >= 0, "--repeats must be >= 0");
    return true;
  });
  if (!run) return 0;
  hcl::bench::TensorMemory::install();
  torch::manual_seed(comm.rank());
  const torch::Tensor local = torch::nn::functional::normalize(
      torch::randn({s.views / w, 128}), torch::nn::functional::NormalizeFuncOptions().dim(1));
  comm.barrier();
  const double rss_before = hcl::bench::peak_rss_mib();
  hcl::bench::TensorMemory::reset_peak();
  const int64_t tensors_before = hcl::bench::TensorMemory::live_bytes();
  const double first_ms = hcl::bench::seconds_of([&] { run_once(comm, s, local); }) * 1000;
  const double tensor_peak =
      max_over_ranks(comm, static_cast<double>(hcl::bench::TensorMemory::peak_bytes() - tensors_before) / (1 << 20));
  const double peak_growth = max_over_ranks(comm, hcl::bench::peak_rss_mib() - rss_before);
  const double first_max_ms = max_over_ranks(comm, first_ms);
  const double ms = s.repeats > 0 ? median_ms(comm, s.repeats, [&] { run_once(comm, s, local); }) : first_max_ms;
  transfers_once(comm, s, local);  // warm-up
  const double comm_ms = median_ms(comm, std::max(s.repeats, 3), [&] { transfers_once(comm, s, local); });
  if (comm.rank() == 0)
    std::cout << nlohmann::json{{"benchmark", "global objective forward+backward"}, {"form", form},
                                {"backend", "mpi"}, {"ranks", w}, {"views", s.views}, {"dim", 128},
                                {"estimator", "hard"}, {"chunk", s.chunk}, {"threads", torch::get_num_threads()},
                                {"ms", ms}, {"first_ms", first_max_ms},
                                {"transfer_ms", comm_ms}, {"exposed_transfer_ms", comm_ms},
                                {"peak_tensor_mib_per_rank", tensor_peak},
                                {"peak_rss_growth_mib_per_rank", peak_growth}}
                     .dump()
              << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-ring-objective")) return 0;
  return hcl::run_guarded("hcl-bench-ring-objective", [&] { return bench(argc, argv); });
}
