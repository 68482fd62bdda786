// --version for every program: hcl's version and git commit (as configured), and the versions of
// LibTorch, the MPI library and NCCL (or "not built") this binary runs with.
#pragma once

#include <string>

namespace hcl::dist {

// "<program> <version> (git <commit>)" and one line each for LibTorch, MPI and NCCL.
std::string version_text(const char* program);

// When argv holds --version: prints version_text to stdout and returns true. Needs neither MPI
// started (MPI_Get_library_version may be called before MPI_Init) nor a launcher, so every
// program's main() calls it first.
bool print_version_if_asked(int argc, char** argv, const char* program);

}  // namespace hcl::dist
