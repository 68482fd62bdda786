// ProgressReporter: the window of step times, the one progress record and its two renderings
// (log line, metrics.jsonl), and the skipped-step and kNN records.
#include "train/progress.h"

#include <cerrno>
#include <cstring>

#include <unistd.h>

#include <iomanip>
#include <sstream>

#include "core/check.h"
#include "core/log.h"
#include "core/process_memory.h"

namespace hcl::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s % 3600) / 60 << "m" << std::setw(2)
      << std::setfill('0') << s % 60 << "s";
  return out.str();
}

}  // namespace

std::string ProgressRecord::line() const {
  const PhaseTimes& ms = ms_per_step;
  std::ostringstream out;
  out << "epoch " << epoch << " step " << step << "/" << total_steps << std::fixed << std::setprecision(4)
      << " loss " << loss << std::setprecision(6) << " lr " << lr << std::setprecision(3) << " beta " << beta
      << " pos " << positive_similarity << " neg " << negative_similarity << " floor " << floor_fraction
      << " ess " << effective_negatives << " gnorm " << grad_norm << std::setprecision(1) << " | "
      << images_per_s << " img/s | ms/step data " << ms.data << " fwd " << ms.forward << " obj "
      << ms.objective << " bwd " << ms.backward << " sync " << ms.sync << " opt " << ms.optimizer;
  if (ms.graph > 0) out << " graph " << ms.graph;
  out << " host " << ms.host << " data-wait " << ms.data_wait << " | rss " << std::setprecision(0) << rss_mib << " MiB pss " << pss_mib << " MiB | ETA " << format_duration(eta_s);
  return out.str();
}

nlohmann::json ProgressRecord::json() const {
  const PhaseTimes& ms = ms_per_step;
  return {{"type", "train"}, {"epoch", epoch}, {"step", step}, {"loss", loss}, {"lr", lr}, {"beta", beta},
          {"positive_similarity", positive_similarity}, {"negative_similarity", negative_similarity},
          {"floor_fraction", floor_fraction}, {"effective_negatives", effective_negatives},
          {"grad_norm", grad_norm}, {"skipped_steps", skipped_steps}, {"images_per_s", images_per_s},
          {"global_batch", global_batch},
          {"step_ms", {{"data", ms.data}, {"forward", ms.forward}, {"objective", ms.objective},
                       {"backward", ms.backward}, {"sync", ms.sync}, {"optimizer", ms.optimizer},
                       {"graph", ms.graph}, {"host", ms.host}, {"data_wait", ms.data_wait}}},
          {"rss_mib", rss_mib}, {"pss_mib", pss_mib}, {"eta_s", eta_s}, {"elapsed_s", elapsed_s}};
}

std::string EpochRecord::line() const {
  std::ostringstream out;
  out << "epoch " << epoch << " in " << std::fixed << std::setprecision(3) << wall_s << " s wall (" << steps
      << " steps): " << std::setprecision(1) << images_per_s << " img/s with pauses (kNN " << std::setprecision(3)
      << knn_s << " s, checkpoint " << checkpoint_s << " s); since the start " << std::setprecision(1)
      << run_images_per_s << " img/s";
  return out.str();
}

nlohmann::json EpochRecord::json() const {
  return {{"type", "epoch"}, {"epoch", epoch}, {"step", step}, {"steps", steps}, {"wall_s", wall_s},
          {"knn_s", knn_s}, {"checkpoint_s", checkpoint_s}, {"images_per_s", images_per_s},
          {"run_images_per_s", run_images_per_s}};
}

ProgressReporter::ProgressReporter(dist::Communicator& comm, const std::filesystem::path& metrics_path,
                                   int64_t global_batch, int64_t total_steps, const torch::Device& device)
    : comm_(comm), metrics_path_(metrics_path), global_batch_(global_batch), total_steps_(total_steps), timer_(device) {
  if (comm_.rank() == 0) {
    metrics_.open(metrics_path, std::ios::app);
    HCL_REQUIRE(metrics_.is_open(), "cannot open ", metrics_path.string(), " for writing: ", std::strerror(errno));
  }
  start();
}

void ProgressReporter::start() {
  run_start_ = epoch_start_ = Clock::now();
  steps_run_ = 0;
  epoch_paused_[0] = epoch_paused_[1] = 0;
  timer_.close_window();  // what came before (evaluation, set-up) is not a step
}

ProgressReporter::Pause::Pause(ProgressReporter& reporter, PauseKind kind)
    : reporter_(reporter), kind_(kind), start_(Clock::now()) {
  reporter_.timer_.pause();
}

ProgressReporter::Pause::~Pause() {
  reporter_.timer_.resume();
  reporter_.epoch_paused_[static_cast<int>(kind_)] += seconds_since(start_);
}

EpochRecord ProgressReporter::epoch_done(const persist::TrainPosition& position, int64_t steps) {
  const auto now = Clock::now();
  EpochRecord r;
  r.epoch = position.epoch - 1;
  r.step = position.global_step;
  r.steps = steps;
  r.wall_s = std::chrono::duration<double>(now - epoch_start_).count();
  r.knn_s = epoch_paused_[static_cast<int>(PauseKind::Knn)];
  r.checkpoint_s = epoch_paused_[static_cast<int>(PauseKind::Checkpoint)];
  r.images_per_s = static_cast<double>(steps * global_batch_) / r.wall_s;
  steps_run_ += steps;
  r.run_images_per_s = static_cast<double>(steps_run_ * global_batch_) / seconds_since(run_start_);
  epoch_start_ = now;
  epoch_paused_[0] = epoch_paused_[1] = 0;
  HCL_LOG(info) << r.line();
  write(r.json());
  return r;
}

namespace {
PhaseTimes ms_per_step(const WindowTiming& w) {
  return {w.device_ms_per_step(Phase::Data),     w.device_ms_per_step(Phase::Forward),
          w.device_ms_per_step(Phase::Objective), w.device_ms_per_step(Phase::Backward),
          w.device_ms_per_step(Phase::Sync),     w.device_ms_per_step(Phase::Optimizer),
          w.device_ms_per_step(Phase::Graph),    w.host_ms_per_step()};
}
}  // namespace

ProgressRecord ProgressReporter::report(const StepReport& step) {
  // Loss and statistics averaged over ranks (one all-reduce); RSS and PSS the largest over ranks.
  const loss::ObjectiveStats& s = step.stats;
  torch::Tensor values = torch::stack({step.loss.to(torch::kFloat), s.positive_similarity, s.negative_similarity,
                                       s.floor_fraction, s.effective_negatives}).to(torch::kDouble);
  comm_.all_reduce(values, dist::ReduceOp::Avg);
  // (The third value, this window's wait for data, travels in the same all-reduce.)
  const WindowTiming window = timer_.close_window();
  const double waited_ms = 1000 * (step.data_wait_s - data_wait_s_) / static_cast<double>(std::max<int64_t>(1, window.steps));
  data_wait_s_ = step.data_wait_s;
  torch::Tensor memory = torch::tensor({resident_mib(), proportional_mib(), waited_ms}, torch::kDouble);
  comm_.all_reduce(memory, dist::ReduceOp::Max);
  const auto v = values.cpu();

  ProgressRecord r;
  r.epoch = step.position.epoch;
  r.step = step.position.global_step;
  r.total_steps = total_steps_;
  r.loss = v[0].item<double>();
  r.lr = step.lr;
  r.beta = step.beta;
  r.positive_similarity = v[1].item<double>();
  r.negative_similarity = v[2].item<double>();
  r.floor_fraction = v[3].item<double>();
  r.effective_negatives = v[4].item<double>();
  r.grad_norm = step.grad_norm;
  r.skipped_steps = step.skipped_steps;
  r.images_per_s = static_cast<double>(global_batch_) / window.seconds_per_step();
  r.global_batch = global_batch_;
  r.ms_per_step = ms_per_step(window);
  r.ms_per_step.data_wait = memory[2].item<double>();
  r.rss_mib = memory[0].item<double>();
  r.pss_mib = memory[1].item<double>();
  r.eta_s = window.seconds_per_step() * static_cast<double>(total_steps_ - r.step);
  r.elapsed_s = seconds_since(run_start_);

  HCL_LOG(info) << r.line();
  write(r.json());
  return r;
}

void ProgressReporter::skipped(int64_t epoch, const SkipRecord& skip) {
  write({{"type", "skipped"}, {"epoch", epoch}, {"step", skip.step}, {"consecutive", skip.consecutive},
         {"skipped_steps", skip.skipped}});
}

void ProgressReporter::knn(const char* when, const persist::TrainPosition& position, double epochs_done,
                           const eval::KnnResult& result, int64_t k, double seconds) {
  HCL_LOG(info) << "kNN (" << when << ", epoch " << position.epoch << ", step " << position.global_step
                << "): top-1 " << std::fixed << std::setprecision(2) << 100 * result.top1 << "%, top-5 "
                << 100 * result.top5 << "% (k " << k << ", bank " << result.bank << ", test " << result.test
                << ", " << std::setprecision(1) << seconds << " s)";
  write({{"type", "knn"}, {"when", when}, {"epoch", position.epoch}, {"step", position.global_step},
         {"epochs_done", epochs_done}, {"top1", result.top1}, {"top5", result.top5}, {"k", k},
         {"bank", result.bank}, {"test", result.test}});
}

void ProgressReporter::write(const nlohmann::json& record) {
  if (comm_.rank() != 0) return;
  metrics_ << record.dump() << std::endl;  // flushed: a record per line as the run goes
  HCL_REQUIRE(metrics_.good(), "cannot write ", metrics_path_.string(), ": ", std::strerror(errno));
}

}  // namespace hcl::train
