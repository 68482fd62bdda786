// hcl-train: distributed hard-negative contrastive pretraining.
//   mpirun -np W hcl-train [--config FILE] [options]     (or srun, or a plain single process)
// Exit codes: 0 done, 2 bad configuration (nothing written), 1 a failure during the run (every rank
// is stopped).
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/check.h"
#include "core/log.h"
#include "core/run_guarded.h"
#include "dist/runtime.h"
#include "launch/options.h"
#include "train/trainer.h"

namespace {

// The run on every rank; errors become exit codes in run_guarded (core/run_guarded.h).
int train(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  const bool rank0 = mpi.rank() == 0;
  // Options, config files and (rank 0) the output folder, agreed on by every rank before any
  // collective: a problem on one rank only ends every rank with exit 2 and one message.
  hcl::launch::ParsedOptions parsed;
  hcl::dist::agree_on_start([&] {
    parsed = hcl::launch::parse_train_options(argc, argv);
    if (parsed.help || !rank0) return;
    const std::string error = hcl::launch::check_output_folder(parsed.config);
    if (!error.empty()) throw hcl::InputError(error);
  });
  if (parsed.help) {
    if (rank0) std::cout << parsed.help_text;
    return 0;
  }
  const hcl::train::TrainConfig& config = parsed.config;
  const hcl::log::Severity level = hcl::log::parse_severity(config.log_level);
  hcl::log::init({mpi.rank(), mpi.world_size(), level, ""});
  // Once every rank has checked its input: rank 0 makes the output folder, then per-rank log files.
  const auto prepare_output = [&] {
    if (rank0) hcl::launch::prepare_output_folder(config);
    MPI_Barrier(MPI_COMM_WORLD);
    if (config.log_file) hcl::log::init({mpi.rank(), mpi.world_size(), level, config.out});
  };
  const hcl::train::TrainSummary s = hcl::train::run_training(config, mpi.topology(), prepare_output);
  std::ostringstream knn;
  knn << std::fixed << std::setprecision(2);
  if (s.knn_top1_before >= 0) knn << 100 * s.knn_top1_before << "% before, ";
  knn << 100 * s.knn_top1_after << "% after";
  HCL_LOG(info) << "done: " << s.steps << " steps, final loss " << s.final_loss << "; kNN top-1 "
                << knn.str();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-train", [&] { return train(mpi, argc, argv); });
}
