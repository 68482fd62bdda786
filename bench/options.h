// Command-line options of the benchmarks, through Boost.Program_options: each benchmark describes
// its "--name value" options bound to variables (with their defaults), and --help prints them. An
// unknown option or a value that does not parse throws; called inside hcl::as_input, the benchmark
// exits with code 2 and one line naming it (core/run_guarded.h).
#pragma once

#include <boost/program_options.hpp>
#include <iostream>

#include "core/job.h"

namespace hcl::bench {

namespace po = boost::program_options;

// Parses argv into `desc` (to which --help is added). Returns false when --help was asked for, after
// printing `usage` and the options (on rank 0 only under mpirun).
inline bool parse_options(int argc, char** argv, const char* usage, po::options_description& desc) {
  desc.add_options()("help,h", "print this help and exit")(
      "version", "print the versions of hcl, LibTorch, MPI and NCCL and exit");
  po::variables_map vm;
  po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
  if (vm.count("help")) {
    if (job::rank() <= 0) std::cout << "usage: " << usage << "\n\n" << desc;
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace hcl::bench
