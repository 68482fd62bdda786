// Training throughput: the trainer's step (two views -> forward -> global objective -> backward ->
// gradient buckets -> finite check -> optimizer) timed per phase, for each view-forward mode and data
// mode, one JSON object per configuration (rank 0 prints):
//   arch, images per rank per step, precision, device, images/s, the step split (augmentation,
//   forward, objective, backward, sync, optimizer; ms), peak memory, and model FLOP utilisation from
//   the counted multiply-adds of the encoder and head (a step = 3 x forward, both views).
// Data modes: "synthetic" (views already on the device, made once) and "real" (the dataset through
// the two-view augmentation on the device, every step).
//   [mpirun -np W] hcl-bench-train [--arch resnet18] [--batch 64] [--steps 5] [--warmup 2]
//       [--precision fp32|bf16] [--view-forward per-view|joint|both] [--data synthetic|real|both]
//       [--dataset fashion-mnist] [--device auto|cpu|cuda] [--threads N] [--peak-tflops T]
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
#include "core/log.h"
#include "core/run_guarded.h"
#include "core/torch_compat.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "dist/data_parallel.h"
#include "dist/sync_batchnorm.h"
#include "model/contrastive_model.h"
#include "model/macs.h"
#include "train/optim.h"
#include "train/step.h"
#include "train/step_guard.h"
#include "train/trainer.h"

namespace {

using hcl::Error;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string arch = "resnet18", precision = "fp32", view_forward = "both", data = "both";
  std::string dataset = "fashion-mnist", device = "auto";
  int64_t batch = 64, steps = 5, warmup = 2, threads = 0;
  double peak_tflops = 0;
};

// The options; nothing when --help was asked for (it has been printed).
std::optional<Args> parse(int argc, char** argv) {
  namespace po = boost::program_options;
  Args a;
  po::options_description desc("hcl-bench-train options");
  desc.add_options()("arch", po::value(&a.arch)->default_value(a.arch), "encoder")(
      "precision", po::value(&a.precision)->default_value(a.precision), "fp32 or bf16 (CUDA)")(
      "view-forward", po::value(&a.view_forward)->default_value(a.view_forward), "per-view, joint or both")(
      "data", po::value(&a.data)->default_value(a.data), "synthetic, real or both")(
      "dataset", po::value(&a.dataset)->default_value(a.dataset), "dataset of the real data mode")(
      "device", po::value(&a.device)->default_value(a.device), "auto, cpu or cuda")(
      "batch", po::value(&a.batch)->default_value(a.batch), "images per rank per step")(
      "steps", po::value(&a.steps)->default_value(a.steps), "timed steps")(
      "warmup", po::value(&a.warmup)->default_value(a.warmup), "untimed steps first")(
      "threads", po::value(&a.threads)->default_value(a.threads), "CPU threads per rank (0: default)")(
      "peak-tflops", po::value(&a.peak_tflops)->default_value(a.peak_tflops),
      "the device's peak for the precision, for MFU (0: H100/H200 figure on CUDA, none on CPU)");
  if (!hcl::bench::parse_options(argc, argv, "[mpirun -np W] hcl-bench-train [options]", desc)) return std::nullopt;
  HCL_REQUIRE(a.batch >= 2 && a.steps >= 1 && a.warmup >= 0, "--batch >= 2, --steps >= 1, --warmup >= 0");
  HCL_REQUIRE(a.precision == "fp32" || a.precision == "bf16", "--precision: fp32 or bf16");
  return a;
}

std::vector<std::string> modes(const std::string& choice, const std::vector<std::string>& all) {
  return choice == "both" ? all : std::vector<std::string>{choice};
}

// Peak memory so far: the device's (CUDA: LibTorch's allocator, as reported by the trainer helper)
// or this process's resident set (CPU).
double peak_memory_mib(const torch::Device& device) {
  return device.is_cuda() ? hcl::train::peak_device_memory_mib(device) : hcl::bench::peak_rss_mib();
}

int bench(hcl::dist::MpiRuntime& mpi, int argc, char** argv) {
  hcl::log::init({mpi.rank(), mpi.world_size(), hcl::log::Severity::warning, ""});
  const std::optional<Args> parsed = hcl::as_input([&] { return parse(argc, argv); });
  if (!parsed) return 0;
  const Args& args = *parsed;
  if (args.threads > 0) torch::set_num_threads(static_cast<int>(args.threads));
  const torch::Device device = hcl::train::choose_device(args.device, mpi.topology().local_rank);
  HCL_REQUIRE(args.precision == "fp32" || device.is_cuda(), "--precision bf16 needs CUDA");
  hcl::train::configure_fast_math(device);
  hcl::dist::Communicator comm;
  hcl::dist::CommunicatorOptions fast;
  fast.check_shapes = false;
  hcl::dist::Communicator grad_comm(MPI_COMM_WORLD, fast);
  const bool rank0 = mpi.rank() == 0;
  double peak_tflops = args.peak_tflops;
  if (peak_tflops == 0 && device.is_cuda()) peak_tflops = args.precision == "bf16" ? 989.0 : 495.0;

  hcl::data::Dataset dataset;
  for (const std::string& data : modes(args.data, {"synthetic", "real"})) {
    for (const std::string& view_forward : modes(args.view_forward, {"per-view", "joint"})) {
      // Images: 3x32x32 synthetic views, or the dataset's own shape through the augmentation.
      if (data == "real" && !dataset.images.defined())
        dataset = hcl::data::load_dataset(args.dataset, "", "train");
      const int64_t channels = data == "real" ? dataset.channels() : 3;
      const int64_t size = data == "real" ? dataset.height() : 32;
      const auto [mean, stddev] = hcl::data::dataset_normalization(data == "real" ? args.dataset : "synthetic", channels);
      const hcl::data::TwoViewAugmenter augmenter(
          hcl::data::AugmentOptions().output_size(size).mean(mean).stddev(stddev), 0);

      hcl::model::NormFactory norm;
      norm.norm2d = [&grad_comm](int64_t c) { return torch::nn::AnyModule(hcl::dist::SyncBatchNorm(c, grad_comm)); };
      norm.norm1d = norm.norm2d;
      torch::manual_seed(0);
      hcl::model::ContrastiveModel net(hcl::model::ModelOptions().encoder(
          hcl::model::EncoderOptions().arch(args.arch).in_channels(channels).norm(norm)));
      net->to(device);
      if (device.is_cuda()) hcl::model::to_channels_last(*net);
      // Multiply-adds of one view's forward through encoder and head (counted on the CPU, batch 2).
      int64_t macs_per_view = 0;
      {
        hcl::model::ContrastiveModel probe(hcl::model::ModelOptions().encoder(
            hcl::model::EncoderOptions().arch(args.arch).in_channels(channels)));
        probe->eval();
        torch::NoGradGuard no_grad;
        macs_per_view = hcl::model::count_macs([&] { probe->forward(torch::zeros({2, channels, size, size})); }) / 2;
      }
      hcl::dist::DataParallel dp(grad_comm, *net, hcl::dist::DataParallelOptions().overlap(device.is_cuda()));
      dp.broadcast_from_root();
      hcl::train::Optimizer optimizer(*net, hcl::train::OptimizerOptions().name("adam"));
      hcl::train::StepGuard guard(*net, 10);
      const auto objective = hcl::loss::ObjectiveOptions().check_values(false).with_stats(false);
      const auto mode = hcl::train::parse_view_forward(view_forward);

      const auto opts = torch::TensorOptions().device(device);
      const torch::Tensor static1 = torch::randn({args.batch, channels, size, size}, opts);
      const torch::Tensor static2 = torch::randn({args.batch, channels, size, size}, opts);
      if (device.is_cuda()) hcl::train::reset_peak_device_memory(device);  // CPU: the process's peak so far
      std::map<std::string, double> split;
      int64_t skipped = 0;
      net->train();
      double measured = 0;
      for (int64_t step = 0; step < args.warmup + args.steps; ++step) {
        const bool timed = step >= args.warmup;
        hcl::train::synchronize_device(device);
        comm.barrier();
        const auto start = Clock::now();
        auto mark = start;
        auto lap = [&](const char* phase) {
          hcl::train::synchronize_device(device);
          const auto now = Clock::now();
          if (timed) split[phase] += std::chrono::duration<double>(now - mark).count();
          mark = now;
        };
        torch::Tensor view1 = static1, view2 = static2;
        if (data == "real") {
          const torch::Tensor indices = (torch::arange(args.batch) + (step * mpi.world_size() + mpi.rank()) * args.batch)
                                            .remainder(dataset.size());
          const torch::Tensor images = dataset.images.index_select(0, indices).to(device, /*non_blocking=*/true);
          view1 = augmenter.view(images, indices, 0, 0);
          view2 = augmenter.view(images, indices, 0, 1);
        }
        lap("augmentation");
        optimizer.zero_grad();
        guard.before_forward();
        dp.begin(true);
        std::optional<hcl::compat::CudaBf16Autocast> autocast;
        if (args.precision == "bf16") autocast.emplace();
        const hcl::train::StepOutput out =
            hcl::train::forward_backward(net, comm, view1, view2, mode, objective, 1.0, /*timed=*/true);
        autocast.reset();
        if (timed) {
          split["forward"] += out.forward_seconds;
          split["objective"] += out.objective_seconds;
          split["backward"] += out.backward_seconds;
        }
        mark = Clock::now();
        dp.finish();
        lap("sync");
        if (guard.check(comm, out.loss, step + 1)) optimizer.step();
        else ++skipped;
        lap("optimizer");
        if (timed) measured += std::chrono::duration<double>(Clock::now() - start).count();
      }
      const double step_s = measured / args.steps;
      const int64_t global = args.batch * mpi.world_size();
      const double flops_per_step = 3.0 * 2.0 * static_cast<double>(macs_per_view) * 2.0 * args.batch;  // per rank
      nlohmann::json record = {
          {"benchmark", "train"}, {"arch", args.arch}, {"images_per_rank", args.batch},
          {"ranks", mpi.world_size()}, {"global_batch", global}, {"precision", args.precision},
          {"device", device.str()}, {"data", data}, {"view_forward", view_forward},
          {"image_shape", {channels, size, size}}, {"steps", args.steps},
          {"images_per_s", global / step_s}, {"step_ms", 1000 * step_s},
          {"gmac_per_view", static_cast<double>(macs_per_view) / 1e9},
          {"model_tflops_per_rank", flops_per_step / step_s / 1e12},
          {"peak_memory_mib", peak_memory_mib(device)}, {"skipped_steps", skipped}};
      for (const auto& [phase, seconds] : split) record["split_ms"][phase] = 1000 * seconds / args.steps;
      record["mfu"] = peak_tflops > 0 ? nlohmann::json(flops_per_step / step_s / 1e12 / peak_tflops) : nlohmann::json();
      if (peak_tflops > 0) record["peak_tflops"] = peak_tflops;
      if (rank0) std::cout << record.dump() << std::endl;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  hcl::dist::MpiRuntime mpi(&argc, &argv);
  return hcl::run_guarded("hcl-bench-train", [&] { return bench(mpi, argc, argv); });
}
