// hcl-train: distributed hard-negative contrastive pretraining.
//   mpirun -np W hcl-train [--config FILE] [options]     (or srun, or a plain single process)
// Exit codes: 0 done, 2 bad configuration (nothing written), 1 a failure during the run (every rank
// is stopped), 3 stopped by SIGTERM, SIGINT or SIGUSR1 after writing a checkpoint (resumable with
// --resume auto).
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/check.h"
#include "core/log.h"
#include "core/run_guarded.h"
#include "core/stop_signal.h"
#include "dist/runtime.h"
#include "dist/version.h"
#include "launch/options.h"
#include "train/trainer.h"

namespace {

// The run on every rank; errors become exit codes in run_guarded (core/run_guarded.h).
int train(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  const bool rank0 = mpi.rank() == 0;
  // Every rank runs hcl-train (an MPMD launch with hcl-eval ends here with exit 2, not a hang).
  hcl::dist::agree_on_program("hcl-train");
  // Options, config files and (rank 0) the output folder, agreed on by every rank before any
  // collective: a problem on one rank only ends every rank with exit 2 and one message.
  hcl::launch::ParsedOptions parsed;
  hcl::dist::agree_on_start([&] { parsed = hcl::launch::parse_train_options(argc, argv, mpi.world_size()); });
  // --help on some ranks only (an MPMD launch): every rank ends with 0, the first that asked prints.
  if (const int asked = hcl::dist::lowest_rank_with(parsed.help); asked >= 0) {
    if (mpi.rank() == asked) std::cout << parsed.help_text;
    return 0;
  }
  hcl::dist::agree_on_start([&] {  // the output folder, checked once for the job by rank 0
    const std::string error = rank0 ? hcl::launch::check_output_folder(parsed.config, parsed.resume_auto) : "";
    if (!error.empty()) throw hcl::InputError(error);
  }, /*name_rank=*/false);
  const hcl::train::TrainConfig& config = parsed.config;
  const hcl::log::Severity level = config.log_level;
  hcl::log::init({mpi.rank(), mpi.world_size(), level, ""});
  if (const std::string w = hcl::dist::singleton_warning(mpi.topology()); !w.empty()) HCL_LOG(warning) << w;
  // Once every rank has checked its input: rank 0 makes the output folder, then per-rank log files.
  const auto prepare_output = [&] {
    hcl::dist::agree_on_start([&] {  // rank 0 makes and locks the folder; every rank learns how it went
      if (rank0) hcl::launch::prepare_output_folder(config, parsed.resume_auto);
    }, /*name_rank=*/false);
    if (config.log_file) hcl::log::init({mpi.rank(), mpi.world_size(), level, config.out});
  };
  const hcl::train::TrainSummary s = hcl::train::run_training(config, mpi.topology(), prepare_output);
  if (s.stopped_by_signal != 0) return hcl::stop::kExitStopped;  // the trainer logged why
  if (s.steps == 0 && !config.resume.empty()) {
    HCL_LOG(info) << "done: the run in " << config.resume << " had already finished; no steps taken";
    return 0;
  }
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
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-train")) return 0;  // no MPI, no data
  // SIGTERM, SIGINT, SIGUSR1: checkpoint, then exit 3. Installed before MPI starts, so that a stop
  // asked for during start-up is not lost (the run stops at its first step boundary).
  hcl::stop::install_handlers();
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-train", [&] { return train(mpi, argc, argv); });
}
