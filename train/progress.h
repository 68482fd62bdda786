// What a run reports as it goes: every --log-interval steps one ProgressRecord, built once and
// written both as the progress line (rank 0's log) and as a "train" record of metrics.jsonl; also
// the "skipped", "knn" and "epoch" records. Time spent in evaluation and checkpoints is kept out of
// the progress line's throughput (the steps' own speed); the epoch record has the wall-time
// throughput of the whole epoch, pauses included, and the time each kind of pause took.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "persist/checkpoint.h"
#include "eval/knn.h"
#include "train/phase_timer.h"
#include "train/train_step.h"

namespace hcl::train {

// Time of each phase of a step (the unit is given where it is used).
struct PhaseTimes {
  double data = 0, forward = 0, objective = 0, backward = 0, sync = 0, optimizer = 0;
  double graph = 0;  // steps replayed from a CUDA graph: forward to optimizer in one
  double host = 0;  // the host's time inside the step (on CUDA: queueing the work, and waits)
  // Host time the step waited for its batch to be loaded (decode workers, prefetch thread), on the
  // rank that waited longest: more than a small part of the step means the data does not keep up.
  double data_wait = 0;
};

// One progress interval: the loss and statistics averaged over ranks, everything else rank 0's
// (memory: the largest over ranks). rss_mib counts every page a rank maps, node-shared datasets in
// full; pss_mib divides shared pages among the processes mapping them (see core/process_memory.h).
struct ProgressRecord {
  int64_t epoch = 0, step = 0, total_steps = 0;  // step: global steps done
  double loss = 0, lr = 0, beta = 0;
  double positive_similarity = 0, negative_similarity = 0, floor_fraction = 0, effective_negatives = 0;
  double grad_norm = 0;
  int64_t skipped_steps = 0;
  double images_per_s = 0;
  int64_t global_batch = 0;
  // Milliseconds per step, averaged over the interval: device time per phase (CUDA events; on the
  // CPU the host clock), and the host's time per step. Host time near the wall time per step while
  // the phases sum to much less means the step is bound by the host, not the GPU.
  PhaseTimes ms_per_step;
  double rss_mib = 0, pss_mib = 0, eta_s = 0, elapsed_s = 0;

  // "epoch 0 step 120/120 loss 5.1309 lr 0.001000 ... | rss 527 MiB pss 410 MiB | ETA 0m00s"
  std::string line() const;
  // The metrics.jsonl record ("type": "train").
  nlohmann::json json() const;
};

// What one step contributes to its progress record.
struct StepReport {
  persist::TrainPosition position;  // after the step
  torch::Tensor loss;      // this rank's (StepResult::loss)
  loss::ObjectiveStats stats;
  double lr = 0, beta = 0;
  double grad_norm = 0;
  int64_t skipped_steps = 0;
  double data_wait_s = 0;  // this rank's seconds waiting for batches so far (data::ViewPipeline)
};

// What the step loop paused for.
enum class PauseKind { Knn, Checkpoint };

// One epoch in wall time: from the end of the previous epoch (or the start of the loop) to the
// end of this one, its kNN evaluation and checkpoint included. Host clock, not synchronised: the
// host runs at most a step or two ahead of the device, so the figure is exact on average over
// epochs.
struct EpochRecord {
  int64_t epoch = 0, step = 0;  // step: global steps done at the epoch's end
  int64_t steps = 0;            // steps of this epoch run in this process (fewer after a resume)
  double wall_s = 0, knn_s = 0, checkpoint_s = 0;
  double images_per_s = 0;      // steps x global batch / wall_s
  double run_images_per_s = 0;  // the same since the loop started (every pause included)

  // "epoch 3 in 1.302 s wall: 38537.2 img/s (kNN 0.000 s, checkpoint 0.012 s); since the start ..."
  std::string line() const;
  nlohmann::json json() const;  // "type": "epoch"
};

class ProgressReporter {
 public:
  // Rank 0 appends records to `metrics_path` (a failed open or write throws hcl::Error naming the
  // file, which ends the job); the other ranks write nothing. Steps are timed on
  // `device` (CUDA events, read once per report).
  ProgressReporter(dist::Communicator& comm, const std::filesystem::path& metrics_path,
                   int64_t global_batch, int64_t total_steps, const torch::Device& device);

  // Starts the run's clock and the first window (after the evaluation before training).
  void start();
  // The steps' timer: begin_step, the phases (TrainStep::run stamps its own), end_step.
  PhaseTimer& timer() { return timer_; }

  // RAII: the time from construction to destruction (evaluation, checkpoints) is not counted in
  // the window's throughput; the epoch record counts it under its kind.
  class Pause {
   public:
    Pause(ProgressReporter& reporter, PauseKind kind);
    ~Pause();
    Pause(const Pause&) = delete;
    Pause& operator=(const Pause&) = delete;

   private:
    ProgressReporter& reporter_;
    PauseKind kind_;
    std::chrono::steady_clock::time_point start_;
  };

  // Builds the record of the window that ends with this step, logs its line (rank 0), writes it,
  // and starts a new window. Collective (two all-reduces: loss and statistics, resident memory);
  // waits for the device once (the window's end).
  ProgressRecord report(const StepReport& step);
  // A step skipped by the finite check, in the epoch that holds it.
  void skipped(int64_t epoch, const SkipRecord& skip);
  // A kNN evaluation: its log line and record. `epochs_done` may be fractional.
  void knn(const char* when, const persist::TrainPosition& position, double epochs_done,
           const eval::KnnResult& result, int64_t k, double seconds);
  // The epoch that ended at `position` (its step is 0) after `steps` steps in this process (fewer
  // than an epoch's after a resume): rank 0 logs its line and writes its record; a new epoch
  // starts. Not collective.
  EpochRecord epoch_done(const persist::TrainPosition& position, int64_t steps);

 private:
  void write(const nlohmann::json& record);

  dist::Communicator& comm_;
  std::filesystem::path metrics_path_;
  std::ofstream metrics_;  // open on rank 0 only; every write is checked (a full disk is an error)
  int64_t global_batch_, total_steps_;
  std::chrono::steady_clock::time_point run_start_, epoch_start_;
  int64_t steps_run_ = 0;            // steps in the epochs done since start()
  double epoch_paused_[2] = {0, 0};  // seconds by PauseKind, this epoch
  double data_wait_s_ = 0;           // StepReport::data_wait_s at the last report
  PhaseTimer timer_;
};

}  // namespace hcl::train
