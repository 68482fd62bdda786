// MPI initialisation, finalisation and topology discovery.
#include "dist/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"
#include "core/job.h"
#include "core/log.h"
#include "dist/mpi_check.h"

namespace hcl::dist {
namespace {

bool mpi_is_up() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

// The hooks of core/job.h, so that error messages name the rank while MPI is up. The rank is read
// once on the main thread: the watchdog's thread asks for it while the main one is inside MPI.
std::atomic<int> g_world_rank{-1};

int rank_in_world() { return mpi_is_up() ? g_world_rank.load() : -1; }

void abort_world(int exit_code) {
  if (mpi_is_up()) MPI_Abort(MPI_COMM_WORLD, exit_code);
}

// The start-up deadline: a thread that ends the process with one line when MPI_Init and the
// topology query have not finished in time (they hang when the ranks cannot reach each other).
class StartDeadline {
 public:
  StartDeadline() {
    long seconds = 300;
    if (const char* text = std::getenv("HCL_START_TIMEOUT"); text != nullptr && *text != '\0')
      seconds = std::strtol(text, nullptr, 10);
    if (seconds <= 0) return;
    thread_ = std::thread([this, seconds] {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!done_cv_.wait_for(lock, std::chrono::seconds(seconds), [this] { return done_; })) expire(seconds);
    });
  }
  ~StartDeadline() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  [[noreturn]] static void expire(long seconds) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    if (rank == nullptr) rank = std::getenv("PMIX_RANK");
    if (rank == nullptr) rank = std::getenv("SLURM_PROCID");
    const std::string line =
        "hcl: error: MPI start-up did not finish within " + std::to_string(seconds) + " s (rank " +
        (rank != nullptr ? rank : "?") + " on " + host +
        "): the ranks cannot reach each other. The usual cause is a network interface with the same "
        "address on every node (docker0, virbr0, a link-local bridge): choose the interface that joins "
        "the nodes, e.g. mpirun --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 (and "
        "NCCL_SOCKET_IFNAME=eth0 for NCCL). HCL_START_TIMEOUT sets this limit in seconds.\n";
    [[maybe_unused]] const ssize_t written = ::write(2, line.data(), line.size());
    std::_Exit(1);
  }

  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

Topology query_topology(MPI_Comm comm) {
  Topology t;
  HCL_CHECK_MPI(MPI_Comm_rank(comm, &t.rank));
  HCL_CHECK_MPI(MPI_Comm_size(comm, &t.world_size));
  MPI_Comm node_comm = MPI_COMM_NULL;
  HCL_CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, t.rank, MPI_INFO_NULL, &node_comm));
  HCL_CHECK_MPI(MPI_Comm_rank(node_comm, &t.local_rank));
  HCL_CHECK_MPI(MPI_Comm_size(node_comm, &t.local_size));
  HCL_CHECK_MPI(MPI_Comm_free(&node_comm));
  // Nodes = ranks that are local rank 0 of their node.
  int is_leader = t.local_rank == 0 ? 1 : 0;
  HCL_CHECK_MPI(MPI_Allreduce(&is_leader, &t.node_count, 1, MPI_INT, MPI_SUM, comm));
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  t.host = host;
  return t;
}

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  StartDeadline deadline;  // ends at the end of this constructor
  int initialized = 0;
  HCL_CHECK_MPI(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    const int rc = MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    if (rc != MPI_SUCCESS) throw Error("MPI_Init_thread failed with code " + std::to_string(rc));
    owns_mpi_ = true;
    if (provided < MPI_THREAD_SERIALIZED)
      HCL_LOG(warning) << "MPI provides thread level " << provided
                       << " < MPI_THREAD_SERIALIZED; backward collectives on autograd threads "
                          "are not guaranteed";
  }
  int rank = -1;
  if (MPI_Comm_rank(MPI_COMM_WORLD, &rank) == MPI_SUCCESS) g_world_rank = rank;
  job::set_hooks({rank_in_world, abort_world});
  HCL_CHECK_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  topology_ = query_topology(MPI_COMM_WORLD);
}

MpiRuntime::~MpiRuntime() {
  job::set_hooks({});
  if (!owns_mpi_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void MpiRuntime::abort_job(int exit_code) {
  log::flush();
  abort_world(exit_code);
  std::_Exit(exit_code);
}

std::string singleton_warning(const Topology& topology) {
  const char* tasks = std::getenv("SLURM_STEP_NUM_TASKS");
  if (tasks == nullptr) tasks = std::getenv("SLURM_NTASKS");
  const long count = tasks != nullptr ? std::strtol(tasks, nullptr, 10) : 0;
  if (topology.world_size != 1 || count <= 1) return "";
  return "SLURM started " + std::to_string(count) +
         " tasks but this one is alone in its MPI job (world size 1): srun started them as singletons, "
         "each training alone into the same --out; use srun --mpi=pmix (see srun --mpi=list) or mpirun "
         "inside the allocation";
}

void agree_on_start(const std::function<void()>& check, bool name_rank) {
  std::string problem;
  bool failed = false;
  try {
    check();
  } catch (const std::exception& e) {
    problem = e.what();
    failed = true;
  } catch (...) {
    problem = "unknown error";
    failed = true;
  }
  int rank = 0, world = 1;
  HCL_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  HCL_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &world));
  // One MIN-reduction answers both questions: the lowest failing rank (world: none), and whether
  // some rank succeeded (-1 somewhere).
  int mine[2] = {failed ? rank : world, failed ? 0 : -1}, agreed[2] = {0, 0};
  HCL_CHECK_MPI(MPI_Allreduce(mine, agreed, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  const int root = agreed[0];
  if (root == world) return;
  const bool every_rank_failed = agreed[1] == 0;
  // The failing rank names itself ("rank R on host H: "; one node may lack a file) unless every
  // rank failed alike or the check is the job's, made by one rank.
  if (rank == root && !every_rank_failed && name_rank) problem = detail::where_am_i() + ": " + problem;
  int length = static_cast<int>(problem.size());
  HCL_CHECK_MPI(MPI_Bcast(&length, 1, MPI_INT, root, MPI_COMM_WORLD));
  problem.resize(static_cast<size_t>(length));
  HCL_CHECK_MPI(MPI_Bcast(problem.data(), length, MPI_CHAR, root, MPI_COMM_WORLD));
  throw InputError(problem);
}

bool root_failed(bool failed_on_root, std::chrono::seconds limit, const std::string& what) {
  int failed = failed_on_root ? 1 : 0;
  MPI_Request request = MPI_REQUEST_NULL;
  HCL_CHECK_MPI(MPI_Ibcast(&failed, 1, MPI_INT, 0, MPI_COMM_WORLD, &request));
  const auto start = std::chrono::steady_clock::now();
  for (int done = 0;;) {
    HCL_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) break;
    if (std::chrono::steady_clock::now() - start > limit) {
      HCL_LOG(fatal) << what << " (waited " << limit.count() << " s); ending the job";
      job::abort(1);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return failed != 0;
}

int lowest_rank_with(bool flag) {
  int rank = 0, world = 1;
  HCL_CHECK_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  HCL_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &world));
  int mine = flag ? rank : world, lowest = world;
  HCL_CHECK_MPI(MPI_Allreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  return lowest == world ? -1 : lowest;
}

void agree_on_program(const char* program) {
  constexpr size_t kName = 64;
  int world = 1;
  HCL_CHECK_MPI(MPI_Comm_size(MPI_COMM_WORLD, &world));
  char mine[kName] = {0};
  std::strncpy(mine, program, kName - 1);
  std::vector<char> all(kName * static_cast<size_t>(world));
  HCL_CHECK_MPI(MPI_Allgather(mine, kName, MPI_CHAR, all.data(), kName, MPI_CHAR, MPI_COMM_WORLD));
  const std::string first(all.data());
  for (int r = 1; r < world; ++r) {
    const std::string other(all.data() + kName * static_cast<size_t>(r));
    if (other != first)
      throw InputError("the ranks of this job run different programs (rank 0: " + first + ", rank " +
                       std::to_string(r) + ": " + other +
                       "); an MPMD launch must start one program on every rank");
  }
}

}  // namespace hcl::dist
