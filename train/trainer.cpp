// The training loop: data -> two views -> forward -> global objective -> backward -> bucketed
// gradient averaging -> optimizer, with logging, metrics, checkpoints and kNN evaluation.
#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include "core/check.h"
#include "core/log.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/prefetch.h"
#include "loss/beta_schedule.h"
#include "train/checkpoint.h"
#include "train/fault_injection.h"
#include "train/knn.h"
#include "train/optim.h"
#include "train/train_step.h"

namespace hcl::train {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// Every rank must run the same configuration and LibTorch: one hash per option (and one of the
// LibTorch version) compared across ranks before any work, naming what differs.
void check_same_config(dist::Communicator& comm, const TrainConfig& config) {
  std::vector<std::string> names;
  std::vector<int64_t> hashes;
  auto add = [&](const std::string& name, const std::string& value) {
    names.push_back(name);
    hashes.push_back(static_cast<int64_t>(std::hash<std::string>{}(value) >> 1));
  };
  const nlohmann::json j = config.to_json();
  for (const auto& item : j.items()) add("--" + item.key(), item.value().dump());
  add("LibTorch version", TORCH_VERSION);
  const torch::Tensor differs = comm.differs_across_ranks(torch::tensor(hashes, torch::kLong));
  std::string list;
  for (size_t i = 0; i < names.size(); ++i)
    if (differs[static_cast<int64_t>(i)].item<bool>()) list += (list.empty() ? "" : ", ") + names[i];
  if (!list.empty())
    throw InputError("ranks were started with different settings: " + list + " (here LibTorch " +
                     TORCH_VERSION + "; check the command line, config files and installation of every rank)");
}

// Same dataset on every rank (size and content fingerprint).
void check_same_dataset(dist::Communicator& comm, const data::Dataset& d) {
  const int64_t sum = d.images.flatten().narrow(0, 0, std::min<int64_t>(d.images.numel(), 1 << 20))
                          .to(torch::kLong).sum().item<int64_t>();
  if (comm.differs_across_ranks(torch::tensor({d.size(), sum}, torch::kLong)).any().item<bool>())
    throw InputError(detail::concat("ranks loaded different datasets (", d.name, ": ", d.size(),
                                    " images here); every rank must read the same files"));
}

// Runs `check` on every rank; if it failed anywhere, every rank throws InputError with the message
// of the lowest failing rank. Every rank reaches the agreement, so none is left waiting.
void agree_on_inputs(dist::Communicator& comm, const std::function<void()>& check) {
  std::string problem;
  try {
    check();
  } catch (const Error& e) {
    problem = e.what();
  }
  torch::Tensor first = torch::tensor({problem.empty() ? comm.world_size() : comm.rank()}, torch::kLong);
  comm.all_reduce(first, dist::ReduceOp::Min);
  const int root = static_cast<int>(first.item<int64_t>());
  if (root == comm.world_size()) return;
  torch::Tensor length = torch::tensor({static_cast<int64_t>(problem.size())}, torch::kLong);
  comm.broadcast(length, root);
  torch::Tensor text = torch::zeros({length.item<int64_t>()}, torch::kByte);
  if (comm.rank() == root) std::memcpy(text.data_ptr(), problem.data(), problem.size());
  comm.broadcast(text, root);
  throw InputError(std::string(static_cast<const char*>(text.data_ptr()), text.numel()));
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  out << std::setw(s >= 3600 ? 2 : 1) << std::setfill('0') << (s % 3600) / 60 << "m" << std::setw(2)
      << std::setfill('0') << s % 60 << "s";
  return out.str();
}

// Resident memory of this process (MiB), from /proc/self/statm; 0 where that is unavailable.
double resident_mib() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

struct WindowTimes {
  double data = 0, forward = 0, objective = 0, backward = 0, sync = 0, optimizer = 0;
  void add(double data_seconds, const StepTimes& o) {
    data += data_seconds, forward += o.forward, objective += o.objective, backward += o.backward,
        sync += o.sync, optimizer += o.optimizer;
  }
};

}  // namespace

torch::Device choose_device(const std::string& choice, int local_rank) {
  if (choice == "cpu") return torch::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (choice == "cuda") HCL_REQUIRE(cuda, "--device cuda: no CUDA device is available to this rank");
  if (!cuda) return torch::kCPU;
  const auto count = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(local_rank % count));
}

model::ContrastiveModel build_model(const TrainConfig& config, const model::NormFactory& norm) {
  return model::ContrastiveModel(model::ModelOptions()
                                     .encoder(model::EncoderOptions()
                                                  .arch(config.arch)
                                                  .stem(model::parse_stem(config.stem))
                                                  .in_channels(data::dataset_image_shape(config.dataset).channels)
                                                  .norm(norm))
                                     .head_hidden(config.head_hidden)
                                     .projection_dim(config.projection_dim));
}

TrainSummary run_training(const TrainConfig& config, const dist::Topology& topology,
                          const std::function<void()>& prepare_output) {
  const torch::Device device = choose_device(config.device, topology.local_rank);
  HCL_REQUIRE(config.precision != "bf16" || device.is_cuda(), "--precision bf16 needs a CUDA device");
  if (config.threads > 0) torch::set_num_threads(static_cast<int>(config.threads));
  configure_fast_math(device);

  dist::CommunicatorOptions comm_options;
  comm_options.backend = dist::parse_backend_choice(config.backend);
  comm_options.timeout = std::chrono::seconds(config.collective_timeout);
  StepCommunicators communicators(MPI_COMM_WORLD, comm_options);
  dist::Communicator& setup_comm = communicators.checked;
  check_same_config(setup_comm, config);
  setup_comm.log_startup(device);

  const int world = setup_comm.world_size();
  const bool rank0 = setup_comm.rank() == 0;
  HCL_LOG(info) << "configuration: " << config.to_json().dump();

  // Input: datasets, batch size, resume checkpoint. Nothing has been written yet.
  data::Dataset train_set, test_set, labeled_train;
  // The kNN memory bank needs labels: the labeled train split when pretraining on another one.
  const bool labeled = config.train_split == "train";
  const int64_t global_batch = config.batch_size * world;
  agree_on_inputs(setup_comm, [&] {
    fault_plan();  // a malformed HCL_FAULT is bad input too
    train_set = data::load_dataset(config.dataset, config.data_dir, config.train_split);
    test_set = data::load_dataset(config.dataset, config.data_dir, "test");
    if (!labeled) labeled_train = data::load_dataset(config.dataset, config.data_dir, "train");
    HCL_REQUIRE(world <= train_set.size(), "the job has ", world, " ranks but the dataset has only ",
                train_set.size(), " images (every rank needs at least ", config.batch_size, ")");
    HCL_REQUIRE(global_batch <= train_set.size(), "--batch-size: the global batch (", config.batch_size,
                " per rank x ", world, " ranks = ", global_batch, ") exceeds the dataset (",
                train_set.size(), " images)");
    if (!config.resume.empty()) check_compatible(read_checkpoint_header(config.resume), config, config.resume);
  });
  const data::Dataset& bank_set = labeled ? train_set : labeled_train;
  check_same_dataset(setup_comm, train_set);
  prepare_output();
  HCL_LOG(info) << "data: " << config.dataset << " " << config.train_split << " " << train_set.size()
                << " images of " << train_set.channels() << "x" << train_set.height() << "x"
                << train_set.width() << ", test " << test_set.size();
  data::DistributedSampler sampler(train_set.size(), config.batch_size, setup_comm.rank(), world,
                                   static_cast<uint64_t>(config.seed));
  const auto [mean, stddev] = data::dataset_normalization(config.dataset, train_set.channels());
  const data::TwoViewAugmenter augmenter(data::AugmentOptions()
                                             .output_size(train_set.height())
                                             .scale_min(config.crop_scale_min)
                                             .blur_p(config.blur_p)
                                             .mean(mean)
                                             .stddev(stddev),
                                         static_cast<uint64_t>(config.seed));

  // Model, replicated from rank 0, and the step that trains it.
  const double base_lr = config.optimizer == "lars" ? config.lr * global_batch / 256.0 : config.lr;
  const auto build = [&](const model::NormFactory& norm) {
    torch::manual_seed(static_cast<uint64_t>(config.seed));
    return build_model(config, norm);
  };
  TrainStep train_step(std::move(communicators), build,
                       StepOptions()
                           .accumulate(config.accumulate)
                           .view_forward(parse_view_forward(config.view_forward))
                           .bf16(config.precision == "bf16")
                           .finite_check(config.finite_check)
                           .max_skipped_steps(config.max_skipped_steps)
                           .sync_bn(config.sync_bn)
                           .bucket_bytes(config.bucket_mb << 20)
                           .overlap(device.is_cuda()),  // CPU: buckets after backward
                       OptimizerOptions()
                           .name(config.optimizer)
                           .lr(base_lr)
                           .weight_decay(config.weight_decay)
                           .momentum(config.momentum),
                       device);
  dist::Communicator& comm = train_step.comm();
  model::ContrastiveModel& net = train_step.model();
  Optimizer& optimizer = train_step.optimizer();
  int64_t parameters = 0;
  for (const auto& p : net->parameters()) parameters += p.numel();
  HCL_LOG(info) << "model: " << config.arch << " (" << config.stem << " stem), " << parameters
                << " parameters, " << (config.sync_bn ? "SyncBatchNorm" : "per-rank BatchNorm") << ", "
                << train_step.data_parallel().bucket_count() << " gradient bucket(s)";

  // Optimisation.
  const int64_t steps_per_epoch = sampler.steps_per_epoch();
  int64_t total_steps = steps_per_epoch * config.epochs;
  if (config.max_steps > 0) total_steps = std::min(total_steps, config.max_steps);
  const ScheduleOptions schedule = ScheduleOptions()
                                       .name(config.lr_schedule)
                                       .warmup_steps(static_cast<int64_t>(config.warmup_epochs * steps_per_epoch))
                                       .total_steps(total_steps);
  const auto beta_schedule = loss::make_beta_schedule(config.beta_schedule, config.beta, config.epochs);

  TrainPosition position;
  if (!config.resume.empty()) {
    const Checkpoint c = load_checkpoint(config.resume, *net, &optimizer.torch_optimizer(), config);
    position = c.position;
    train_step.data_parallel().verify_replicas();
    HCL_LOG(info) << "resumed from " << config.resume << " at epoch " << position.epoch << ", step "
                  << position.step << " (" << position.global_step << " steps done)";
  }

  const std::filesystem::path out(config.out);
  std::ofstream metrics;
  if (rank0) {
    std::ofstream(out / "config.json") << config.to_json().dump(2) << "\n";
    metrics.open(out / "metrics.jsonl", std::ios::app);
  }
  auto write_metrics = [&](const nlohmann::json& record) {
    if (rank0) metrics << record.dump() << std::endl;
  };

  const KnnOptions knn = KnnOptions()
                             .k(config.knn_k)
                             .temperature(config.knn_temperature)
                             .bank_size(config.knn_bank_size)
                             .test_size(config.knn_test_size)
                             .seed(config.seed);
  double paused = 0;  // seconds of evaluation and checkpoints, kept out of the throughput
  auto evaluate = [&](const char* when) {
    const auto start = clock_type::now();
    const KnnResult r = knn_evaluate(net, comm, augmenter, bank_set, test_set, knn, device);
    net->train();
    HCL_LOG(info) << "kNN (" << when << ", epoch " << position.epoch << ", step " << position.global_step
                  << "): top-1 " << std::fixed << std::setprecision(2) << 100 * r.top1 << "%, top-5 "
                  << 100 * r.top5 << "% (k " << config.knn_k << ", bank " << r.bank << ", test " << r.test
                  << ", " << std::setprecision(1) << seconds_since(start) << " s)";
    write_metrics({{"type", "knn"}, {"when", when}, {"epoch", position.epoch},
                   {"step", position.global_step},
                   {"epochs_done", static_cast<double>(position.global_step) / steps_per_epoch},
                   {"top1", r.top1}, {"top5", r.top5}});
    paused += seconds_since(start);
    return r.top1;
  };

  TrainSummary summary;
  if (position.global_step == 0) summary.knn_top1_before = evaluate("before training");
  paused = 0;

  auto save = [&](const char* why) {
    const auto start = clock_type::now();
    if (rank0) {
      const std::string path = (out / "checkpoint.pt").string();
      save_checkpoint(path, *net, &optimizer.torch_optimizer(), position, config);
      HCL_LOG(info) << "checkpoint (" << why << "): " << path << " at step " << position.global_step;
    }
    comm.barrier();
    paused += seconds_since(start);
  };

  // The loop.
  net->train();
  data::BatchPrefetcher prefetcher(train_set, sampler, device.is_cuda());
  const loss::ObjectiveOptions objective_base = loss::ObjectiveOptions()
                                                    .estimator(loss::parse_estimator(config.estimator))
                                                    .temperature(config.temperature)
                                                    .tau_plus(config.tau_plus)
                                                    .column_chunk(config.column_chunk)
                                                    .check_values(false);  // StepGuard catches non-finite values
  WindowTimes window;
  int64_t window_steps = 0;
  auto window_start = clock_type::now();
  const auto run_start = clock_type::now();
  const int64_t first_step = position.global_step;
  const int64_t eval_every = static_cast<int64_t>(config.eval_interval * steps_per_epoch);
  const int64_t checkpoint_every = static_cast<int64_t>(config.checkpoint_interval * steps_per_epoch);
  double last_loss = 0;

  while (position.global_step < total_steps) {
    const bool log_step = (position.global_step + 1) % config.log_interval == 0 ||
                          position.global_step + 1 == total_steps;
    const bool timed = log_step || !device.is_cuda();
    const auto data_start = clock_type::now();
    const int64_t step_number = position.global_step + 1;  // 1-based, as the progress lines count
    const double beta = beta_schedule->beta(position.epoch);
    const loss::ObjectiveOptions objective = loss::ObjectiveOptions(objective_base).beta(beta).with_stats(log_step);
    const data::HostBatch batch = prefetcher.get(position.epoch, position.step);
    const torch::Tensor images = batch.images.to(device, /*non_blocking=*/true);
    const torch::Tensor view1 = augmenter.view(images, batch.indices, position.epoch, 0);
    const torch::Tensor view2 = augmenter.view(images, batch.indices, position.epoch, 1);
    if (timed) synchronize_device(device);
    const double data_seconds = seconds_since(data_start);

    const double lr = scheduled_lr(base_lr, schedule, position.global_step);
    const StepResult result = train_step.run(view1, view2, objective, lr, step_number, timed);
    if (!result.applied)
      write_metrics({{"type", "skipped"}, {"epoch", position.epoch}, {"step", step_number},
                     {"consecutive", train_step.guard().consecutive()}, {"skipped_steps", train_step.guard().skipped()}});

    ++position.global_step;
    if (++position.step == steps_per_epoch) position.step = 0, ++position.epoch;
    window.add(data_seconds, result.times);
    ++window_steps;

    if (log_step) {
      // Loss and statistics averaged over ranks (one all-reduce); times are rank 0's.
      const loss::ObjectiveStats& stats = result.stats;
      torch::Tensor values = torch::stack({result.loss.to(torch::kFloat), stats.positive_similarity,
                                           stats.negative_similarity, stats.floor_fraction,
                                           stats.effective_negatives}).to(torch::kDouble);
      comm.all_reduce(values, dist::ReduceOp::Avg);
      torch::Tensor rss = torch::tensor({resident_mib()}, torch::kDouble);  // largest over ranks
      comm.all_reduce(rss, dist::ReduceOp::Max);
      const auto v = values.cpu();
      const double grad_norm = train_step.grad_norm().item<double>();
      const double rss_mib = rss.item<double>();
      last_loss = v[0].item<double>();
      const double elapsed = seconds_since(window_start) - paused;
      const double images_per_s = window_steps * global_batch / elapsed;
      const double per_step = elapsed / window_steps;
      const double eta = per_step * (total_steps - position.global_step);
      auto share = [&](double x) { return x / window_steps * 1000; };
      HCL_LOG(info) << "epoch " << position.epoch << " step " << position.global_step << "/" << total_steps
                    << std::fixed << std::setprecision(4) << " loss " << last_loss << std::setprecision(6)
                    << " lr " << lr << std::setprecision(3) << " beta " << beta << " pos " << v[1].item<double>()
                    << " neg " << v[2].item<double>() << " floor " << v[3].item<double>() << " ess "
                    << v[4].item<double>() << " gnorm " << grad_norm << std::setprecision(1) << " | "
                    << images_per_s
                    << " img/s | ms/step data " << share(window.data) << " fwd " << share(window.forward)
                    << " obj " << share(window.objective) << " bwd " << share(window.backward) << " sync "
                    << share(window.sync) << " opt " << share(window.optimizer) << " | rss "
                    << std::setprecision(0) << rss_mib << " MiB | ETA " << format_duration(eta);
      write_metrics({{"type", "train"}, {"epoch", position.epoch}, {"step", position.global_step},
                     {"loss", last_loss}, {"lr", lr}, {"beta", beta},
                     {"positive_similarity", v[1].item<double>()}, {"negative_similarity", v[2].item<double>()},
                     {"floor_fraction", v[3].item<double>()}, {"effective_negatives", v[4].item<double>()},
                     {"grad_norm", grad_norm}, {"skipped_steps", train_step.guard().skipped()},
                     {"images_per_s", images_per_s}, {"global_batch", global_batch},
                     {"step_ms", {{"data", share(window.data)}, {"forward", share(window.forward)},
                                  {"objective", share(window.objective)}, {"backward", share(window.backward)},
                                  {"sync", share(window.sync)}, {"optimizer", share(window.optimizer)}}},
                     {"rss_mib", rss_mib}, {"eta_s", eta}, {"elapsed_s", seconds_since(run_start)}});
      window = WindowTimes();
      window_steps = 0;
      window_start = clock_type::now();
      paused = 0;
    }
    const bool last = position.global_step == total_steps;
    if (!last && eval_every > 0 && position.global_step % eval_every == 0) evaluate("during training");
    if (!last && checkpoint_every > 0 && position.global_step % checkpoint_every == 0) save("interval");
  }
  save("end of training");
  summary.knn_top1_after = evaluate("after training");
  summary.final_loss = last_loss;
  summary.steps = position.global_step - first_step;
  return summary;
}

}  // namespace hcl::train
