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
};

// Throws hcl::Error with a one-line message naming the option for unknown options, values of the
// wrong type, unreadable config files and invalid values.
ParsedOptions parse_train_options(int argc, char** argv);

// Checks the output folder and the resume file without writing anything: "" when fine, else the
// one-line error. `out` may hold another run only with --resume or --force.
std::string check_output_folder(const train::TrainConfig& config);

// Creates the output folder (and, with --force, clears the previous run's records).
void prepare_output_folder(const train::TrainConfig& config);

}  // namespace hcl::launch
