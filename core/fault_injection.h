// Deliberate faults for the reliability tests (tests/launch/test_faults.sh), chosen by the
// environment variable HCL_FAULT; unset in normal runs, where every query below is false.
//   HCL_FAULT=throw:step=S[:rank=R]                 throw an error at the start of step S
//   HCL_FAULT=nan-grad:step=S[-E][:rank=R]          non-finite gradients in steps S..E
//   HCL_FAULT=kill-in-checkpoint:byte=N[:write=K]   SIGKILL after N bytes of the K-th checkpoint
//                                                   file this process writes (default K = 1)
//   HCL_FAULT=fail-in-checkpoint:byte=N[:write=K]   the K-th checkpoint file's write fails after N
//                                                   bytes, as on a full disk (ENOSPC)
//   HCL_FAULT=slow-checkpoint:ms=N                  every checkpoint write takes N ms longer
//                                                   (a large model on a slow file system)
//   HCL_FAULT=capture-fail                          every CUDA-graph capture of the step fails
//                                                   at cudaStreamEndCapture (train/step_graph.h)
// Steps are 1-based global steps, as the progress lines count them; without rank, every rank.
#pragma once

#include <cstdint>
#include <string>

namespace hcl {

struct FaultPlan {
  enum class Kind { None, Throw, NanGrad, KillInCheckpoint, FailInCheckpoint, SlowCheckpoint, CaptureFail };
  Kind kind = Kind::None;
  int64_t first_step = 0, last_step = 0;
  int rank = -1;  // -1: every rank
  int64_t byte = 0;
  int64_t write = 1;
  int64_t ms = 0;

  // True when `kind` is planned for this rank at this 1-based step.
  bool at(Kind k, int64_t step, int this_rank) const {
    return kind == k && step >= first_step && step <= last_step && (rank < 0 || rank == this_rank);
  }
};

// Parses a HCL_FAULT value; throws hcl::Error naming the problem.
FaultPlan parse_fault_plan(const std::string& text);

// The plan of this process (HCL_FAULT, read once).
const FaultPlan& fault_plan();

// For tests in one process: `plan` replaces the process's plan while this object lives.
class ScopedFaultPlan {
 public:
  explicit ScopedFaultPlan(const FaultPlan& plan);
  ~ScopedFaultPlan();
  ScopedFaultPlan(const ScopedFaultPlan&) = delete;
  ScopedFaultPlan& operator=(const ScopedFaultPlan&) = delete;

 private:
  FaultPlan previous_;
};

}  // namespace hcl
