// Training throughput: the trainer's own step (train::TrainStep: two views -> forward -> global
// objective -> backward -> gradient buckets -> finite check -> optimizer), timed as hcl-train times
// it (train::PhaseTimer: device time per phase from CUDA events, host time per step, wall time of
// the timed steps with one synchronisation at each end), for each data mode, view-forward mode and
// BatchNorm choice; one JSON object per configuration (rank 0 prints): arch, images per rank per
// step, precision, device, images/s, the split (data, forward, objective, backward, sync,
// optimizer, host; ms per step), peak memory, and model FLOP utilisation from the counted
// multiply-adds of the encoder and head (a step = 3 x forward, both views).
// Data modes: "synthetic" (views already on the device, made once) and "real" (the dataset through
// the prefetch thread and the batched two-view augmentation on the device, every step, as hcl-train).
// Also per record: ATen ops launched by one step (after the timed window; a CUDA-graph replay
// launches a handful). At one rank a configuration that fails gets a record with "error" (and the
// exit code is 1) while the others still run. --force-multi-rank-paths runs the W > 1 code at one
// rank (gradient buckets with hooks, SyncBatchNorm's synchronised kernels), for one GPU.
//   [mpirun -np W] hcl-bench-train [--arch resnet18] [--batch 64] [--steps 5] [--warmup 2]
//       [--precision fp32|bf16] [--view-forward per-view|joint|both] [--data synthetic|real|both]
//       [--sync-bn on|off|both] [--cuda-graph auto|on|off|both] [--dataset fashion-mnist]
//       [--device auto|cpu|cuda] [--threads N] [--peak-tflops T] [--force-multi-rank-paths]
// --cuda-graph as hcl-train's (auto: replayed from a CUDA graph after 3 eager warm-up steps where
// possible); the JSON says whether the timed steps were replays ("cuda_graph") and, if not, why.
// --peak-tflops is the device's peak for the precision (MFU is null without it on CPU; on CUDA the
// default is the H100/H200 dense figure: 989 for bf16, 495 for TF32).
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "bench/options.h"
#include "bench/timing.h"
#include "core/check.h"
#include "core/device.h"
#include "core/enum_option.h"
#include "core/log.h"
#include "core/op_counts.h"
#include "core/run_guarded.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/view_pipeline.h"
#include "data/sampler.h"
#include "dist/version.h"
#include "model/contrastive_model.h"
#include "model/macs.h"
#include "train/config.h"
#include "train/phase_timer.h"
#include "train/train_step.h"

namespace {

using hcl::Error;

struct Args {
  hcl::model::Arch arch = hcl::model::Arch::ResNet18;
  hcl::train::Precision precision = hcl::train::Precision::Fp32;
  std::string view_forward = "both", data = "both", sync_bn = "on";  // "both": each of the two in turn
  std::string cuda_graph = "auto";                                   // auto, on, off or both
  hcl::data::DatasetKind dataset = hcl::data::DatasetKind::FashionMnist;
  hcl::DeviceChoice device = hcl::DeviceChoice::Auto;
  int64_t batch = 64, steps = 5, warmup = 2, threads = 0;
  double peak_tflops = 0;
  bool force_multi_rank_paths = false;
};

// The options; nothing when --help was asked for (it has been printed).
std::optional<Args> parse(int argc, char** argv) {
  namespace po = boost::program_options;
  Args a;
  po::options_description desc("hcl-bench-train options");
  desc.add_options()("arch", hcl::enum_option(&a.arch, "arch"),
                     hcl::help_with_choices<hcl::model::Arch>("encoder").c_str())(
      "precision", hcl::enum_option(&a.precision, "precision"),
      hcl::help_with_choices<hcl::train::Precision>("").c_str())(
      "view-forward", po::value(&a.view_forward)->default_value(a.view_forward), "per-view, joint or both")(
      "sync-bn", po::value(&a.sync_bn)->default_value(a.sync_bn),
      "SyncBatchNorm: on (hcl-train's default), off or both")(
      "data", po::value(&a.data)->default_value(a.data), "synthetic, real or both")(
      "cuda-graph", po::value(&a.cuda_graph)->default_value(a.cuda_graph),
      "auto, on, off or both (on and off)")(
      "dataset", hcl::enum_option(&a.dataset, "dataset"),
      hcl::help_with_choices<hcl::data::DatasetKind>("dataset of the real data mode").c_str())(
      "device", hcl::enum_option(&a.device, "device"), hcl::help_with_choices<hcl::DeviceChoice>("").c_str())(
      "batch", po::value(&a.batch)->default_value(a.batch), "images per rank per step")(
      "steps", po::value(&a.steps)->default_value(a.steps), "timed steps")(
      "warmup", po::value(&a.warmup)->default_value(a.warmup), "untimed steps first")(
      "threads", po::value(&a.threads)->default_value(a.threads), "CPU threads per rank (0: default)")(
      "peak-tflops", po::value(&a.peak_tflops)->default_value(a.peak_tflops),
      "the device's peak for the precision, for MFU (0: H100/H200 figure on CUDA, none on CPU)")(
      "force-multi-rank-paths", po::bool_switch(&a.force_multi_rank_paths),
      "run the W > 1 code at one rank too (gradient buckets with hooks, SyncBatchNorm's synchronised kernels)");
  if (!hcl::bench::parse_options(argc, argv, "[mpirun -np W] hcl-bench-train [options]", desc))
    return std::nullopt;
  HCL_REQUIRE(a.batch >= 2 && a.steps >= 1 && a.warmup >= 0, "--batch >= 2, --steps >= 1, --warmup >= 0");
  HCL_REQUIRE(a.sync_bn == "on" || a.sync_bn == "off" || a.sync_bn == "both", "--sync-bn: on, off or both");
  HCL_REQUIRE(a.data == "synthetic" || a.data == "real" || a.data == "both",
              "--data: synthetic, real or both");
  HCL_REQUIRE(a.cuda_graph == "both" || hcl::find_named<hcl::train::CudaGraphMode>(a.cuda_graph),
              "--cuda-graph: auto, on, off or both");
  return a;
}

std::vector<std::string> modes(const std::string& choice, const std::vector<std::string>& all) {
  return choice == "both" ? all : std::vector<std::string>{choice};
}

// Peak memory so far: the device's (CUDA: LibTorch's allocator, as reported by the trainer helper)
// or this process's resident set (CPU).
double peak_memory_mib(const torch::Device& device) {
  return device.is_cuda() ? hcl::peak_device_memory_mib(device) : hcl::bench::peak_rss_mib();
}

// Images of one configuration: 3x32x32 synthetic views, or the dataset's own shape through the
// augmentation.
struct ImageSource {
  const hcl::data::Dataset* dataset = nullptr;  // null: synthetic
  int64_t channels = 3, size = 32;
};

// Multiply-adds of one view's forward through encoder and head (counted on the CPU, batch 2).
int64_t macs_per_view(hcl::model::Arch arch, const ImageSource& images) {
  hcl::model::ContrastiveModel probe(hcl::model::ModelOptions().encoder(
      hcl::model::EncoderOptions().arch(arch).in_channels(images.channels)));
  probe->eval();
  torch::NoGradGuard no_grad;
  return hcl::model::count_macs([&] {
           probe->forward(torch::zeros({2, images.channels, images.size, images.size}));
         }) /
         2;
}

struct Measurement {
  hcl::train::WindowTiming timing;  // the timed steps: one window, read once at its end
  int64_t skipped = 0;
  int64_t aten_ops_per_step = 0;  // ATen ops (views excluded) launched by one step after the window
  hcl::train::GraphCounts graph;
  std::string graph_refusal;  // "" when the steps after the warm-up were graph replays
};

// Warm-up and timed steps of the trainer's step on one configuration, timed as hcl-train times
// them (train::PhaseTimer: events per phase, no synchronisation inside the timed steps). Real data
// come as in hcl-train (data::ViewPipeline): the prefetch thread gathers the images and draws the
// view parameters, and both views of step k+1 are made in one pass on a side stream during step k.
Measurement measure(const Args& args, const ImageSource& source, const std::string& view_forward,
                    bool sync_bn, const std::string& cuda_graph, const torch::Device& device) {
  hcl::train::TrainConfig model_config;  // hcl-train's model of this arch for these images
  model_config.arch = args.arch;
  model_config.dataset = source.dataset ? args.dataset : hcl::data::DatasetKind::Synthetic;
  const auto build = [&](const hcl::model::NormFactory& norm) {
    torch::manual_seed(0);
    return hcl::model::ContrastiveModel(model_config.model_options(norm));
  };
  hcl::train::TrainStep train_step(
      hcl::dist::Communicator(), build,
      hcl::train::StepOptions()
          .view_forward(hcl::parse<hcl::train::ViewForward>("view-forward", view_forward))
          .bf16(args.precision == hcl::train::Precision::Bf16)
          .sync_bn(sync_bn)
          .overlap(device.is_cuda())
          .cuda_graph(hcl::parse<hcl::train::CudaGraphMode>("cuda-graph", cuda_graph))
          .multi_rank_paths_at_one_rank(args.force_multi_rank_paths),
      hcl::train::OptimizerOptions().kind(hcl::train::OptimizerKind::Adam), device);
  const auto objective = hcl::loss::ObjectiveOptions().check_values(false).with_stats(false);
  const double lr = train_step.optimizer().options().lr();
  const auto [mean, stddev] = hcl::data::dataset_normalization(
      source.dataset ? args.dataset : hcl::data::DatasetKind::Synthetic, source.channels);
  const hcl::data::TwoViewAugmenter augmenter(
      hcl::data::AugmentOptions().output_size(source.size).mean(mean).stddev(stddev), 0);
  const auto format = device.is_cuda() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  const torch::Tensor synthetic = torch::randn({2 * args.batch, source.channels, source.size, source.size},
                                               torch::TensorOptions().device(device))
                                      .contiguous(format);
  std::optional<hcl::data::DistributedSampler> sampler;
  std::optional<hcl::data::ViewPipeline> pipeline;
  if (source.dataset) {
    sampler.emplace(source.dataset->size(), args.batch, train_step.comm().rank(),
                    train_step.comm().world_size(), 0);
    pipeline.emplace(*source.dataset, *sampler, augmenter, device);
  }
  if (device.is_cuda()) hcl::reset_peak_device_memory(device);  // CPU: the process's peak so far

  Measurement m;
  hcl::train::PhaseTimer timer(device);
  train_step.model()->train();
  for (int64_t step = 0; step < args.warmup + args.steps; ++step) {
    if (step == args.warmup) {  // the timed window starts with every rank's queue empty
      hcl::synchronize_device(device);
      train_step.comm().barrier();
      timer.close_window();
    }
    timer.begin_step();
    torch::Tensor views = synthetic;
    if (pipeline)
      views = pipeline->views(step / sampler->steps_per_epoch(), step % sampler->steps_per_epoch());
    timer.end_phase(hcl::train::Phase::Data);
    const hcl::train::StepResult out =
        train_step.run(views.narrow(0, 0, args.batch), views.narrow(0, args.batch, args.batch), objective, lr,
                       step + 1, &timer);
    timer.end_step();
    m.skipped += static_cast<int64_t>(out.skips.size());
  }
  m.timing = timer.close_window();
  // One more step, counted: the ops a timed step launches (a replay: a handful; eager: ~1,000).
  const int64_t next = args.warmup + args.steps;
  torch::Tensor views = synthetic;
  if (pipeline) views = pipeline->views(next / sampler->steps_per_epoch(), next % sampler->steps_per_epoch());
  m.aten_ops_per_step = hcl::count_ops([&] {
                          train_step.run(views.narrow(0, 0, args.batch), views.narrow(0, args.batch, args.batch),
                                         objective, lr, next + 1);
                        }).kernels();
  m.skipped += static_cast<int64_t>(train_step.settle().size());
  m.graph = train_step.graph_counts();
  m.graph_refusal = train_step.graph_refusal();
  return m;
}

// The figures of a measured configuration, into its record.
void add_figures(nlohmann::json& record, const Measurement& m, int64_t macs, double peak_tflops,
                 const torch::Device& device) {
  const double step_s = m.timing.seconds_per_step();
  const double flops_per_step = 3.0 * 2.0 * static_cast<double>(macs) * 2.0 * record["images_per_rank"].get<double>();
  record.update({{"images_per_s", record["global_batch"].get<double>() / step_s},
                 {"step_ms", 1000 * step_s},
                 {"aten_ops_per_step", m.aten_ops_per_step},
                 {"gmac_per_view", static_cast<double>(macs) / 1e9},
                 {"model_tflops_per_rank", flops_per_step / step_s / 1e12},
                 {"peak_memory_mib", peak_memory_mib(device)},
                 {"skipped_steps", m.skipped},
                 {"cuda_graph", m.graph.replays > 0},
                 {"graph_replays", m.graph.replays},
                 {"graph_captures", m.graph.captures},
                 {"graph_capture_s", m.graph.capture_seconds}});
  if (!m.graph_refusal.empty()) record["cuda_graph_refusal"] = m.graph_refusal;
  for (int p = 0; p < hcl::train::kPhaseCount; ++p) {
    const auto phase = static_cast<hcl::train::Phase>(p);
    record["split_ms"][hcl::train::to_string(phase)] = m.timing.device_ms_per_step(phase);
  }
  record["split_ms"]["host"] = m.timing.host_ms_per_step();
  record["mfu"] =
      peak_tflops > 0 ? nlohmann::json(flops_per_step / step_s / 1e12 / peak_tflops) : nlohmann::json();
  if (peak_tflops > 0) record["peak_tflops"] = peak_tflops;
}

int bench(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::warning, ""});
  const std::optional<Args> parsed = hcl::as_input([&] { return parse(argc, argv); });
  if (!parsed) return 0;
  const Args& args = *parsed;
  const torch::Device device = hcl::set_up_device(args.device, mpi.topology().local_rank, args.threads);
  HCL_REQUIRE(args.precision == hcl::train::Precision::Fp32 || device.is_cuda(),
              "--precision bf16 needs CUDA");
  double peak_tflops = args.peak_tflops;
  if (peak_tflops == 0 && device.is_cuda())
    peak_tflops = args.precision == hcl::train::Precision::Bf16 ? 989.0 : 495.0;

  hcl::data::Dataset dataset;
  bool failed = false;  // some configuration's record has an "error"
  for (const std::string& data : modes(args.data, {"synthetic", "real"})) {
    for (const std::string& view_forward :
         modes(args.view_forward, {hcl::name_of(hcl::train::ViewForward::PerView),
                                   hcl::name_of(hcl::train::ViewForward::Joint)})) {
      if (data == "real" && !dataset.images.defined())
        dataset = hcl::data::load_dataset(args.dataset, "", "train");
      const ImageSource source =
          data == "real" ? ImageSource{&dataset, dataset.channels(), dataset.height()} : ImageSource{};
      const int64_t macs = macs_per_view(args.arch, source);
      for (const std::string& sync_bn : modes(args.sync_bn, {"on", "off"})) {
        for (const std::string& cuda_graph : modes(args.cuda_graph, {"on", "off"})) {
          nlohmann::json record = {{"benchmark", "train"},
                                   {"arch", hcl::name_of(args.arch)},
                                   {"images_per_rank", args.batch},
                                   {"ranks", mpi.world_size()},
                                   {"global_batch", args.batch * mpi.world_size()},
                                   {"precision", hcl::name_of(args.precision)},
                                   {"device", device.str()},
                                   {"data", data},
                                   {"view_forward", view_forward},
                                   {"sync_bn", sync_bn == "on"},
                                   {"cuda_graph_mode", cuda_graph},
                                   {"multi_rank_paths_at_one_rank", args.force_multi_rank_paths},
                                   {"image_shape", {source.channels, source.size, source.size}},
                                   {"steps", args.steps}};
          try {
            add_figures(record, measure(args, source, view_forward, sync_bn == "on", cuda_graph, device), macs,
                        peak_tflops, device);
          } catch (const std::exception& e) {
            // One rank: this configuration's record says why, and the others still run. (At W
            // ranks a failure on one rank would leave the others in a collective: it ends the job.)
            if (mpi.world_size() > 1) throw;
            record["error"] = e.what();
            failed = true;
          }
          if (mpi.rank() == 0) std::cout << record.dump() << std::endl;
        }
      }
    }
  }
  return failed ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-train")) return 0;  // no MPI, no data
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-bench-train", [&] { return bench(mpi, argc, argv); });
}
