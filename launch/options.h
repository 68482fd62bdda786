// Command-line and config-file parsing for hcl-train (Boost.Program_options): every option of
// TrainConfig under the same name in both places; the command line wins over the file.
#pragma once

#include <string>

#include "train/config.h"

namespace hcl::launch {

struct ParsedOptions {
  train::TrainConfig config;
  bool help = false;
  std::string help_text;
  // --resume auto was given: config.resume is then <out>/checkpoint.pt when that file exists, else
  // "" (a fresh start, allowed in a folder holding the same run that never wrote a checkpoint).
  bool resume_auto = false;
};

// Throws hcl::Error with a one-line message naming the option for unknown options, values of the
// wrong type, unreadable config files and invalid values.
// `world`: the job's ranks, which share --global-batch (TrainConfig::resolve_batch).
ParsedOptions parse_train_options(int argc, char** argv, int world = 1);

// Checks the output folder and the resume file without writing anything: "" when fine, else the
// one-line error. `out` may hold another run only with --force; it may hold the run being
// continued (--resume of a checkpoint in `out`, or --resume auto).
std::string check_output_folder(const train::TrainConfig& config, bool resume_auto = false);

// Creates the output folder (and, when starting afresh with --force or --resume auto, clears the
// previous attempt's records; with --force also the other run's checkpoint and config.json).
void prepare_output_folder(const train::TrainConfig& config, bool resume_auto = false);

}  // namespace hcl::launch
