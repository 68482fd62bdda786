// run_guarded: exceptions to exit codes, the same for every program.
#include "core/run_guarded.h"

#include <iostream>

#include "core/job.h"
#include "core/log.h"

namespace hcl {
namespace {

// A failure of this rank alone: with a job, log it and end every rank; alone, one line and exit 1.
int fail_alone(const char* program, const char* what) {
  if (!job::running()) {
    std::cerr << program << ": error: " << what << std::endl;
    return 1;
  }
  HCL_LOG(fatal) << what;
  job::abort(1);
}

}  // namespace

int run_guarded(const char* program, const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& e) {  // every rank has it: all exit 2 together, rank 0 says why
    if (job::rank() <= 0) std::cerr << program << ": error: " << e.what() << std::endl;
    return 2;
  } catch (const AgreedError& e) {  // every rank stopped at the same point: all exit 1 together
    if (job::rank() <= 0) {
      if (job::running())
        HCL_LOG(fatal) << e.what();
      else
        std::cerr << program << ": error: " << e.what() << std::endl;
    }
    return 1;
  } catch (const std::exception& e) {  // this rank alone: end the whole job rather than leave it waiting
    return fail_alone(program, e.what());
  } catch (...) {
    return fail_alone(program, "unknown exception");
  }
}

}  // namespace hcl
