// Benchmark of the memory an in-memory dataset costs each rank: RSS and PSS per rank after loading
// a dataset and reading all of it, loaded once per node into shared memory (what hcl-train and
// hcl-eval do) or privately by every rank (as before), so that runs at 1, 2 and 4 ranks show
// whether memory per rank stays flat. No model: bench/node_data_memory runs this at several rank
// counts, and hcl-train for the figure with a model. Prints one JSON object (rank 0).
//   mpirun -np W hcl-bench-node-data [--dataset fashion-mnist] [--synthetic-images N] [--private]
#include <chrono>
#include <iostream>

#include "bench/options.h"
#include "core/enum_option.h"
#include "core/log.h"
#include "core/process_memory.h"
#include "core/run_guarded.h"
#include "dist/runtime.h"
#include "dist/version.h"
#include "train/node_datasets.h"

namespace {

struct Args {
  hcl::data::DatasetKind dataset = hcl::data::DatasetKind::FashionMnist;
  std::string data_dir, split = "train";
  int64_t synthetic_images = 0;  // > 0: N random 3x32x32 images instead of --dataset
  bool private_copies = false;
};

// The dataset as this benchmark is asked to load it (on the node's leader, or on every rank).
hcl::data::Dataset load(const Args& a) {
  if (a.synthetic_images > 0) return hcl::data::make_synthetic(a.synthetic_images, 3, 32, 10, 1);
  return hcl::data::load_dataset(a.dataset, a.data_dir, a.split);
}

// Reads every byte, as an epoch of training does, so that every page is mapped in this process.
int64_t read_all(const hcl::data::Dataset& d) {
  return d.images.sum(torch::kLong).item<int64_t>() + d.labels.sum().item<int64_t>();
}

int bench(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::warning, ""});
  Args a;
  namespace po = boost::program_options;
  po::options_description desc("hcl-bench-node-data options");
  desc.add_options()("dataset", hcl::enum_option(&a.dataset, "dataset"),
                     hcl::help_with_choices<hcl::data::DatasetKind>("").c_str())(
      "data-dir", po::value(&a.data_dir)->default_value(a.data_dir), "dataset folder (empty: the default)")(
      "split", po::value(&a.split)->default_value(a.split), "split to load")(
      "synthetic-images", po::value(&a.synthetic_images)->default_value(0),
      "load N random 3x32x32 images instead of --dataset (a CIFAR-sized stand-in; 0: off)")(
      "private", po::bool_switch(&a.private_copies), "every rank loads its own copy (the behaviour before #21)");
  if (!hcl::as_input([&] { return hcl::bench::parse_options(argc, argv, "mpirun -np W hcl-bench-node-data [options]", desc); }))
    return 0;
  torch::set_num_threads(1);
  const double rss_before = hcl::resident_mib(), pss_before = hcl::proportional_mib();
  const auto start = std::chrono::steady_clock::now();
  const hcl::dist::NodeComm node = hcl::dist::NodeComm::of_this_node(MPI_COMM_WORLD);
  const hcl::data::Dataset d = a.private_copies ? load(a) : hcl::train::load_once_per_node(node, [&] { return load(a); });
  const int64_t checksum = read_all(d);
  MPI_Barrier(MPI_COMM_WORLD);  // every rank has mapped every page before any measures
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double mine[5] = {hcl::resident_mib(), hcl::proportional_mib(), rss_before, pss_before, static_cast<double>(checksum)};
  std::vector<double> all(5 * static_cast<size_t>(mpi.world_size()));
  MPI_Gather(mine, 5, MPI_DOUBLE, all.data(), 5, MPI_DOUBLE, 0, MPI_COMM_WORLD);
  if (mpi.rank() != 0) return 0;
  // Growth over the load is what the data costs a rank; the totals also hold LibTorch's own pages
  // (its libraries' pages count in PSS divided among every process mapping them, other jobs' too).
  nlohmann::json ranks = nlohmann::json::array();
  double max_rss = 0, max_pss = 0, max_rss_growth = 0, max_pss_growth = 0, sum_pss_growth = 0;
  for (int r = 0; r < mpi.world_size(); ++r) {
    const double* m = &all[5 * static_cast<size_t>(r)];
    HCL_REQUIRE(m[4] == static_cast<double>(checksum), "rank ", r, " read other data than rank 0");
    ranks.push_back({{"rank", r}, {"rss_mib", m[0]}, {"pss_mib", m[1]}, {"rss_growth_mib", m[0] - m[2]},
                     {"pss_growth_mib", m[1] - m[3]}});
    max_rss = std::max(max_rss, m[0]);
    max_pss = std::max(max_pss, m[1]);
    max_rss_growth = std::max(max_rss_growth, m[0] - m[2]);
    max_pss_growth = std::max(max_pss_growth, m[1] - m[3]);
    sum_pss_growth += m[1] - m[3];  // the job's (one node's) memory for data
  }
  const double data_mib = static_cast<double>(d.images.nbytes() + d.labels.nbytes()) / (1 << 20);
  std::cout << nlohmann::json{{"benchmark", "node_data"}, {"dataset", a.synthetic_images > 0 ? "synthetic" : d.name},
                              {"images", d.size()}, {"data_mib", data_mib}, {"ranks", mpi.world_size()},
                              {"ranks_per_node", node.size()}, {"copies", a.private_copies ? "per rank" : "per node"},
                              {"load_s", load_s}, {"max_rss_growth_mib", max_rss_growth},
                              {"max_pss_growth_mib", max_pss_growth}, {"sum_pss_growth_mib", sum_pss_growth},
                              {"max_rss_mib", max_rss},
                              {"max_pss_mib", max_pss}, {"per_rank", ranks}}.dump()
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-node-data")) return 0;  // no MPI, no data
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-bench-node-data", [&] { return bench(mpi, argc, argv); });
}
