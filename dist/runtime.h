// MPI start-up and the process topology: the first thing every program (and the test main) makes.
#pragma once

#include <mpi.h>

#include <chrono>
#include <functional>
#include <string>

namespace hcl::dist {

// Where this process sits: its rank, the ranks on its node, and how many nodes the job spans.
struct Topology {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among the processes of this node (its GPU index)
  int local_size = 1;  // processes on this node
  int node_count = 1;
  std::string host;
};

// Topology of `comm`, from an MPI_COMM_TYPE_SHARED split (collective over `comm`).
Topology query_topology(MPI_Comm comm);

// RAII owner of MPI: initialises it (MPI_THREAD_SERIALIZED: autograd may run a backward collective
// on its own thread while the main thread waits) unless it already is, makes errors on
// MPI_COMM_WORLD return codes (so HCL_CHECK_MPI can name them), and finalises on destruction.
// Move-only; exactly one per process. MPI_Init and the topology query run under a start-up
// deadline (HCL_START_TIMEOUT seconds, 300 unless set; 0: none): ranks that cannot reach each
// other (most often a network interface with the same address on every node, such as docker0)
// end with one line naming that cause and the mpirun/NCCL flags that choose the interface, and
// exit 1, instead of waiting forever.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  const Topology& topology() const { return topology_; }
  int rank() const { return topology_.rank; }
  int world_size() const { return topology_.world_size; }

  // Ends every rank of the job (after a fatal error on this one) instead of leaving them waiting.
  [[noreturn]] static void abort_job(int exit_code);

 private:
  bool owns_mpi_ = false;
  Topology topology_;
};

// "" normally; under SLURM, when this process is alone in its MPI job (world size 1) although the
// step has several tasks (SLURM_STEP_NUM_TASKS or SLURM_NTASKS > 1), the warning that srun started
// the tasks as singletons (no MPI plugin): each would train alone, all into the same --out.
std::string singleton_warning(const Topology& topology);

// Start-up agreement, for everything a program does between MPI_Init and its first collective
// (parsing options, reading config files, checking paths, loading input files): runs `check` on
// every rank, then, if it threw on any rank, every rank throws hcl::InputError (exit 2) with the
// message of the lowest failing rank, prefixed by "rank R on host H: " unless every rank failed or
// `name_rank` is false (checks that one rank makes for the job, such as the output folder). So a
// problem on some ranks only (a config file missing on one node, an MPMD launch) ends every rank
// with one message instead of leaving the others blocked in their first collective. Raw MPI on
// MPI_COMM_WORLD (one all-reduce of two ints; two broadcasts only on failure): usable before any
// Communicator exists. Collective: every rank must call it the same number of times.
void agree_on_start(const std::function<void()>& check, bool name_rank = true);

// Every rank learns whether rank 0's work (a checkpoint write) failed: rank 0 passes its outcome,
// the others wait for it outside any collective watchdog, polling a non-blocking broadcast on
// MPI_COMM_WORLD, for at most `limit`; past it, `what` is logged as fatal and the job ends (exit 1).
// Returns true on every rank when rank 0 failed. Collective.
bool root_failed(bool failed_on_root, std::chrono::seconds limit, const std::string& what);

// The lowest rank of MPI_COMM_WORLD where `flag` is true, or -1 (one all-reduce): how the ranks
// agree on --help given to some of them only.
int lowest_rank_with(bool flag);

// Start-up agreement on the program: throws hcl::InputError on every rank when the ranks of the
// job run different programs (an MPMD launch mixing hcl-train and hcl-eval), naming two of them,
// before either makes a collective the other does not (one all-gather of the names). Collective.
void agree_on_program(const char* program);

}  // namespace hcl::dist
