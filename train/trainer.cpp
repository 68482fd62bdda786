// hcl-train's job: run_training puts the set-up (train/setup.h) and the resume policy
// (train/resume.h) together, then the loop (one named call per line) and the evaluations and
// checkpoints it calls for. The step itself is train::TrainStep; what is reported is
// train::ProgressReporter.
#include "train/trainer.h"

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>
#include <utility>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/device.h"
#include "core/job.h"
#include "core/log.h"
#include "core/stop_signal.h"
#include "data/image_folder.h"
#include "data/view_pipeline.h"
#include "loss/beta_schedule.h"
#include "eval/knn.h"
#include "persist/checkpoint.h"
#include "persist/checkpoint_writer.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/resume.h"
#include "train/setup.h"
#include "train/train_step.h"

namespace hcl::train {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// ---- The loop, and what it calls for. ----

// Both augmented views of this rank's images, view-major (rows [0, B) the first view).
struct Views {
  torch::Tensor both;
  torch::Tensor first() const { return both.narrow(0, 0, both.size(0) / 2); }
  torch::Tensor second() const { return both.narrow(0, both.size(0) / 2, both.size(0) / 2); }
};

// One run of the loop over the steps still to take, from the position resumed at.
class Trainer {
 public:
  Trainer(const TrainConfig& config, const Datasets& datasets, TrainStep& step);
  TrainSummary run();

 private:
  bool is_log_step(int64_t step) const;
  Views next_views(data::ViewPipeline& pipeline);
  loss::ObjectiveOptions objective(double beta, bool with_stats) const;
  void advance_position();
  double report(const StepResult& result, double lr, double beta, double data_wait_s);
  void report_skips(const std::vector<SkipRecord>& skips);
  bool is_due(int64_t every) const;
  bool is_due(int64_t every, int64_t min_seconds, double& last);
  int agreed_stop_signal();
  void end_epoch(int64_t first_step);
  double evaluate(const char* when);
  void save(const char* why, bool background);
  void start_background_save(const char* why, const std::string& path);
  void settle_background_write();
  void agree_on_write(const std::string& problem);

  const TrainConfig& config_;
  const Datasets& datasets_;
  TrainStep& step_;
  const torch::Device device_;
  const bool rank0_;
  data::DistributedSampler sampler_;
  const data::TwoViewAugmenter augmenter_;
  const int64_t steps_per_epoch_, total_steps_, eval_every_, checkpoint_every_;
  const double base_lr_;
  const ScheduleOptions lr_schedule_;
  const std::unique_ptr<loss::BetaSchedule> beta_schedule_;
  const loss::ObjectiveOptions objective_base_;
  const eval::KnnOptions knn_;
  // The checkpoint's header when resuming (loaded into the step), else empty.
  const persist::Checkpoint resumed_;
  const std::string run_id_;  // the checkpoint's run id, or a new one (config.json and checkpoints hold it)
  persist::TrainPosition position_;
  ProgressReporter reporter_;
  const clock_type::time_point start_ = clock_type::now();
  // The run's wall clock as every rank knows it: the largest of the ranks' seconds since start_,
  // agreed at each stop check (every kStopCheckInterval steps). Wall-clock decisions read only it.
  double agreed_seconds_ = 0;
  double last_eval_s_ = 0, last_checkpoint_s_ = 0;  // agreed_seconds_ at the last interval ones
  bool write_pending_ = false;    // every rank: a background checkpoint write awaits its agreement
  std::string snapshot_problem_;  // rank 0: a snapshot that failed (agreed on at the next settle)
  persist::CheckpointWriter writer_;       // last: destroyed (joined) first
};

TrainSummary Trainer::run() {
  TrainSummary summary;
  const int64_t first_step = position_.global_step;
  if (first_step == 0) summary.knn_top1_before = evaluate("before training");
  step_.model()->train();
  data::ViewPipeline pipeline(datasets_.train, sampler_, augmenter_, device_);
  PhaseTimer& timer = reporter_.timer();
  reporter_.start();
  while (position_.global_step < total_steps_) {
    const int64_t step = position_.global_step + 1;  // 1-based, as the progress lines count
    const bool log_step = is_log_step(step);
    const double beta = beta_schedule_->beta(position_.epoch);
    const double lr = scheduled_lr(base_lr_, lr_schedule_, position_.global_step);
    timer.begin_step();
    const Views views = next_views(pipeline);
    const StepResult result = step_.run(views.first(), views.second(), objective(beta, log_step), lr, step, &timer);
    timer.end_step();
    report_skips(result.skips);
    advance_position();
    if (log_step) summary.final_loss = report(result, lr, beta, pipeline.waited_seconds());
    if (is_due(eval_every_, config_.eval_min_seconds, last_eval_s_)) evaluate("during training");
    if (const int signal = agreed_stop_signal()) {
      save(stop::name(signal), /*background=*/false);
      HCL_LOG(info) << "stopped by " << stop::name(signal) << " after step " << position_.global_step << " of "
                    << total_steps_ << "; checkpoint written to " << config_.out
                    << "; continue with --resume auto (exit code " << stop::kExitStopped << ")";
      summary.stopped_by_signal = signal;
      summary.steps = position_.global_step - first_step;
      return summary;
    }
    if (is_due(checkpoint_every_, config_.checkpoint_min_seconds, last_checkpoint_s_)) save("interval", /*background=*/true);
    if (position_.step == 0) end_epoch(first_step);
  }
  report_skips(step_.settle());
  const GraphCounts& graph = step_.graph_counts();
  if (rank0_ && graph.captures > 0)
    HCL_LOG(info) << "CUDA graph: " << graph.replays << " steps replayed, " << graph.captures << " capture(s) in "
                  << graph.capture_seconds << " s";
  save("end of training", /*background=*/false);
  if (const data::ImageFolder* f = datasets_.train.folder.get(); f != nullptr && f->skipped_images() > 0)
    HCL_LOG(warning) << f->skipped_images() << " bad image(s) of " << f->index().root
                     << " were skipped and replaced on this rank (--skip-bad-images; each is named above)";
  summary.knn_top1_after = evaluate("after training");
  summary.steps = position_.global_step - first_step;
  return summary;
}

Trainer::Trainer(const TrainConfig& config, const Datasets& datasets, TrainStep& step)
    : config_(config),
      datasets_(datasets),
      step_(step),
      device_(step.device()),
      rank0_(step.comm().rank() == 0),
      sampler_(datasets.train.size(), config.batch_size, step.comm().rank(), step.comm().world_size(),
               static_cast<uint64_t>(config.seed)),
      augmenter_(make_augmenter(config, datasets.train)),
      steps_per_epoch_(sampler_.steps_per_epoch()),
      total_steps_(count_steps(config, steps_per_epoch_)),
      eval_every_(static_cast<int64_t>(config.eval_interval * steps_per_epoch_)),
      checkpoint_every_(static_cast<int64_t>(config.checkpoint_interval * steps_per_epoch_)),
      base_lr_(step.optimizer().options().lr()),
      lr_schedule_(ScheduleOptions()
                       .kind(config.lr_schedule)
                       .warmup_steps(static_cast<int64_t>(config.warmup_epochs * steps_per_epoch_))
                       .total_steps(total_steps_)),
      beta_schedule_(loss::make_beta_schedule(config.beta_schedule, config.beta, config.epochs)),
      objective_base_(loss::ObjectiveOptions()
                          .estimator(config.estimator)
                          .temperature(config.temperature)
                          .tau_plus(config.tau_plus)
                          .column_chunk(config.column_chunk)
                          .check_values(false)),  // the step's finite check catches non-finite values
      knn_(eval::KnnOptions()
               .k(config.knn_k)
               .temperature(config.knn_temperature)
               .bank_size(config.knn_bank_size)
               .test_size(config.knn_test_size)
               .seed(config.seed)
               .bf16(config.precision == Precision::Bf16)),
      resumed_(resume_if_asked(config, step)),
      run_id_(resumed_.run_id.empty() ? new_run_id() : resumed_.run_id),
      position_(trim_metrics(config, resumed_.position, rank0_)),
      reporter_(step.comm(), std::filesystem::path(config.out) / "metrics.jsonl", sampler_.global_batch(),
                total_steps_, step.device()) {
  if (!rank0_) return;
  nlohmann::json written = config.to_json();
  written["run-id"] = run_id_;
  write_file_atomically((std::filesystem::path(config.out) / "config.json").string(), written.dump(2) + "\n");
  HCL_LOG(info) << "run " << run_id_ << (resumed_.run_id.empty() ? " (new)" : " (continued)");
}

// Progress lines at every log_interval-th step and at the last.
bool Trainer::is_log_step(int64_t step) const {
  return step % config_.log_interval == 0 || step == total_steps_;
}

// Both views of this rank's images of the next step, made on the device while the previous step
// trained (data::ViewPipeline; channels-last on CUDA, as the model is).
Views Trainer::next_views(data::ViewPipeline& pipeline) {
  Views views{pipeline.views(position_.epoch, position_.step)};
  reporter_.timer().end_phase(Phase::Data);
  return views;
}

loss::ObjectiveOptions Trainer::objective(double beta, bool with_stats) const {
  return loss::ObjectiveOptions(objective_base_).beta(beta).with_stats(with_stats);
}

// A skipped step still consumes its batch and its schedule slot.
void Trainer::advance_position() {
  ++position_.global_step;
  if (++position_.step == steps_per_epoch_) position_.step = 0, ++position_.epoch;
}

// The progress record of the window ending at this step; returns its loss (averaged over ranks).
double Trainer::report(const StepResult& result, double lr, double beta, double data_wait_s) {
  const StepReport step{position_, result.loss, result.stats, lr, beta, step_.grad_norm().item<double>(),
                        step_.guard().skipped(), data_wait_s};
  return reporter_.report(step).loss;
}

// The skips the finite check decided (on the device: known one step late), one record each.
void Trainer::report_skips(const std::vector<SkipRecord>& skips) {
  for (const SkipRecord& s : skips) reporter_.skipped((s.step - 1) / steps_per_epoch_, s);
}

// Evaluations and checkpoints at multiples of their interval, except after the last step (the
// end of training does both anyway).
bool Trainer::is_due(int64_t every) const {
  return position_.global_step != total_steps_ && every > 0 && position_.global_step % every == 0;
}

// Also at most one per `min_seconds` of the agreed wall clock (0: no such floor); `last` is the
// agreed clock at the last one. Every rank reads the same agreed clock, so all decide alike.
bool Trainer::is_due(int64_t every, int64_t min_seconds, double& last) {
  if (!is_due(every) || agreed_seconds_ - last < static_cast<double>(min_seconds)) return false;
  last = agreed_seconds_;
  return true;
}

// Steps between two checks of the stop flag: the check is one all-reduce of two numbers (on CUDA,
// one host read), so a stop waits for at most this many steps.
constexpr int64_t kStopCheckInterval = 10;

// The signal that asked this job to stop (core/stop_signal.h) on any rank, or 0. Every rank checks
// at the same steps (every kStopCheckInterval-th, never the last) and the flag is MAX-reduced, so
// all ranks stop after the same step. The same all-reduce agrees on the wall clock (the largest
// of the ranks' milliseconds since the start). Collective at those steps.
int Trainer::agreed_stop_signal() {
  if (position_.global_step % kStopCheckInterval != 0 || position_.global_step == total_steps_) return 0;
  const auto elapsed_ms = static_cast<int64_t>(1000 * seconds_since(start_));
  torch::Tensor both = torch::tensor({static_cast<int64_t>(stop::requested()), elapsed_ms}, torch::kLong).to(device_);
  step_.comm().all_reduce(both, dist::ReduceOp::Max, dist::CollectiveOptions::without_shape_check());
  const torch::Tensor host = both.cpu();  // the one host read
  const int64_t* values = host.data_ptr<int64_t>();
  agreed_seconds_ = static_cast<double>(values[1]) / 1000;
  return static_cast<int>(values[0]);
}

// The epoch that just ended, in wall time with its pauses (the progress reporter's epoch record).
void Trainer::end_epoch(int64_t first_step) {
  const int64_t steps = std::min(steps_per_epoch_, position_.global_step - first_step);
  reporter_.epoch_done(position_, steps);
}

// kNN top-1 accuracy of the encoder's features; collective.
double Trainer::evaluate(const char* when) {
  const ProgressReporter::Pause pause(reporter_, PauseKind::Knn);
  const auto start = clock_type::now();
  const eval::KnnResult r = eval::knn_evaluate(step_.model(), step_.comm(), augmenter_, datasets_.knn_bank, datasets_.test,
                                   knn_, device_);
  step_.model()->train();
  const double epochs_done = static_cast<double>(position_.global_step) / steps_per_epoch_;
  reporter_.knn(when, position_, epochs_done, r, config_.knn_k, seconds_since(start));
  return r.top1;
}

// How long the other ranks wait for rank 0's checkpoint write before ending the job: the write is
// not a collective, so --collective-timeout (which a healthy large write may exceed) does not
// apply; the limit is that timeout plus 10 minutes plus 10 s per 100 MB of model and optimizer
// state (a slow shared file system), so a rank 0 hung in its write still ends the job.
std::chrono::seconds save_limit(const TrainConfig& config, torch::nn::Module& model) {
  int64_t bytes = 0;
  for (const auto& p : model.parameters()) bytes += 3 * p.numel() * static_cast<int64_t>(p.element_size());
  for (const auto& b : model.buffers()) bytes += b.numel() * static_cast<int64_t>(b.element_size());
  return std::chrono::seconds(config.collective_timeout + 600 + bytes / 10'000'000);
}

// A checkpoint of the current state. Synchronous (`background` false: the end of training, a
// stop): rank 0 writes it while the others wait, and every rank learns whether it succeeded.
// Background (interval checkpoints): rank 0 takes a snapshot and a writer thread writes it while
// training goes on; whether it succeeded is agreed on at the next save (any kind), which waits for
// it first. Either way a failed write (full disk) stops every rank with exit 1 and the error
// naming the file, and every rank issues the same collectives. Collective.
void Trainer::save(const char* why, bool background) {
  const ProgressReporter::Pause pause(reporter_, PauseKind::Checkpoint);
  settle_background_write();
  report_skips(step_.settle());  // the optimizer state saved belongs to steps whose fate is known
  const std::string path = (std::filesystem::path(config_.out) / "checkpoint.pt").string();
  if (background) return start_background_save(why, path);
  std::string problem;
  if (rank0_) {
    const auto start = clock_type::now();
    try {
      persist::save_checkpoint(path, *step_.model(), &step_.optimizer().checkpoint_state(), position_,
                               config_.to_json(), sampler_.global_batch(), run_id_);
      HCL_LOG(info) << "checkpoint (" << why << "): " << path << " at step " << position_.global_step
                    << " (written in " << seconds_since(start) << " s while the step loop waited)";
    } catch (const std::exception& e) {
      problem = e.what();
    }
  }
  agree_on_write(problem);
}

// Rank 0: the snapshot (the step loop's only pause for an interval checkpoint), then the write on
// the writer thread, which logs it when done. Every rank: a write is pending. Not collective.
void Trainer::start_background_save(const char* why, const std::string& path) {
  write_pending_ = true;
  if (!rank0_) return;
  const auto start = clock_type::now();
  persist::CheckpointState state;
  try {
    state = persist::snapshot_checkpoint(*step_.model(), &step_.optimizer().checkpoint_state(), position_,
                                         config_.to_json(), sampler_.global_batch(), run_id_);
  } catch (const std::exception& e) {
    snapshot_problem_ = "checkpoint " + path + ": snapshot failed: " + e.what();
    return;
  }
  const double snapshot_s = seconds_since(start);
  writer_.start(
      path, std::move(state),
      [why = std::string(why), step = position_.global_step, snapshot_s](const persist::WriteOutcome& w) {
        HCL_LOG(info) << "checkpoint (" << why << "): " << w.path << " at step " << step
                      << " (step loop paused " << snapshot_s << " s for the snapshot; written in "
                      << w.seconds << " s in the background)";
      });
}

// Waits for the background write started at the previous save, if any, and agrees on its outcome
// (throws AgreedError on every rank if it failed). Collective when a write was pending, which
// every rank knows alike.
void Trainer::settle_background_write() {
  if (!write_pending_) return;
  write_pending_ = false;
  std::string problem;
  if (rank0_) {
    problem = writer_.wait().problem;
    if (problem.empty()) problem = std::exchange(snapshot_problem_, "");
  }
  agree_on_write(problem);
}

// Every rank learns whether rank 0's write succeeded (`problem` empty), waiting for it outside the
// collective watchdog, for at most save_limit. Throws AgreedError on every rank when it failed.
// Collective.
void Trainer::agree_on_write(const std::string& problem) {
  const bool failed = dist::root_failed(!problem.empty(), save_limit(config_, *step_.model()),
                                        "rank 0 did not finish writing the checkpoint within --collective-timeout "
                                        "+ 600 s + 10 s per 100 MB");
  if (failed) throw AgreedError(rank0_ ? problem : "checkpoint write failed on rank 0");
}

}  // namespace

TrainSummary run_training(const TrainConfig& config, const dist::Topology& topology,
                          const std::function<void()>& prepare_output) {
  const torch::Device device = prepare_device(config, topology);
  dist::Communicator comm = open_communicator(config, device);
  const Datasets datasets = load_datasets(comm, config, topology.local_size);
  prepare_output();  // every rank's input is good: now the output folder
  save_index_cache(config, datasets, comm.rank());
  log_datasets(config, datasets);
  const int world = comm.world_size();
  HCL_LOG(info) << "batch: global " << config.batch_size * world << " images per step = " << config.batch_size
                << " per rank x " << world << " ranks (" << 2 * config.batch_size * world - 2
                << " negatives per anchor)";
  const auto build = [&](const model::NormFactory& norm) {
    torch::manual_seed(static_cast<uint64_t>(config.seed));  // rank 0's initialisation is broadcast
    return model::ContrastiveModel(config.model_options(norm));
  };
  TrainStep step(std::move(comm), build, step_options(config, device), optimizer_options(config, world),
                 device);
  log_model(config, step);
  Trainer trainer(config, datasets, step);
  return trainer.run();
}

}  // namespace hcl::train
