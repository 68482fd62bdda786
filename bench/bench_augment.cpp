// Benchmark of the batched two-view augmentation: augmented images per second (both views of each
// image) for 32x32x3 batches of 512, on the CPU (and the GPU where one exists), against the time of
// one ResNet-18 (CIFAR stem) training step at the same batch, and the ATen ops of augmenting one
// batch (both views: the batched views() and the older two view() calls; the ops it calls, and
// with LibTorch's nested calls). Prints one JSON object.
//   hcl-bench-augment [--batch 512] [--repeats 5] [--step-batch 512]
#include <ATen/record_function.h>

#include <atomic>
#include <iostream>

#include "bench/options.h"
#include "bench/timing.h"
#include "core/device.h"
#include "core/run_guarded.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "dist/version.h"
#include "model/contrastive_model.h"

namespace {

std::atomic<int64_t> ops_called{0}, ops_all{0};
thread_local int op_depth = 0;

struct OpCount {
  int64_t called = 0;  // ATen ops the augmentation calls (depth 0)
  int64_t all = 0;     // with the ones LibTorch calls inside them
};

// The ATen ops that `work` makes on this thread, as RecordFunction sees them.
OpCount aten_ops(const std::function<void()>& work) {
  ops_called = ops_all = 0;
  op_depth = 0;
  const at::CallbackHandle handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(
          [](const at::RecordFunction&) -> std::unique_ptr<at::ObserverContext> {
            ++ops_all;
            if (op_depth++ == 0) ++ops_called;
            return nullptr;
          },
          [](const at::RecordFunction&, at::ObserverContext*) { --op_depth; })
          .scopes({at::RecordScope::FUNCTION}));
  work();
  at::removeCallback(handle);
  return {ops_called.load(), ops_all.load()};
}

int bench(int argc, char** argv) {
  int64_t batch = 512, repeats = 5, step_batch = 512;
  namespace po = boost::program_options;
  po::options_description desc("hcl-bench-augment options");
  desc.add_options()("batch", po::value(&batch)->default_value(batch), "images per augmented batch")(
      "repeats", po::value(&repeats)->default_value(repeats), "timed batches (the median is reported)")(
      "step-batch", po::value(&step_batch)->default_value(step_batch), "images of the ResNet-18 step compared with");
  if (!hcl::as_input([&] { return hcl::bench::parse_options(argc, argv, "hcl-bench-augment [options]", desc); }))
    return 0;
  const hcl::data::Dataset d = hcl::data::make_synthetic(batch, 3, 32, 10, 1);
  const hcl::data::TwoViewAugmenter aug(hcl::data::AugmentOptions().output_size(32), 0);
  std::vector<torch::Device> devices = {torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA, 0);
  nlohmann::json results = nlohmann::json::array();
  for (const torch::Device& device : devices) {
    const torch::Tensor images = d.images.to(device);
    const torch::Tensor index = torch::arange(batch, torch::kLong);
    int64_t epoch = 0;
    const auto format = device.is_cuda() ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
    const double aug_seconds = hcl::bench::median_seconds([&] {
      aug.views(images, index, epoch++, format);
      hcl::synchronize_device(device);
    }, static_cast<int>(repeats));
    const OpCount batched_ops = aten_ops([&] { aug.views(images, index, 0, format); });
    const OpCount per_view_ops = aten_ops([&] {
      aug.view(images, index, 0, 0);
      aug.view(images, index, 0, 1);
    });

    // One training step of ResNet-18 on two views of step_batch images (forward + backward).
    torch::manual_seed(0);
    hcl::model::ContrastiveModel net(
        hcl::model::ModelOptions().encoder(hcl::model::EncoderOptions().arch(hcl::model::Arch::ResNet18)));
    net->to(device);
    const torch::Tensor views = torch::randn({2 * step_batch, 3, 32, 32}, torch::TensorOptions().device(device));
    const double step_seconds = hcl::bench::median_seconds([&] {
      net->zero_grad();
      net->forward(views).projection.square().sum().backward();
      hcl::synchronize_device(device);
    }, device.is_cuda() ? 5 : 1, device.is_cuda() ? 2 : 0);
    results.push_back({{"device", device.str()}, {"batch", batch},
                       {"augment_ms_per_batch", aug_seconds * 1e3},
                       {"augment_ops_per_batch", batched_ops.called},
                       {"augment_ops_per_batch_with_nested", batched_ops.all},
                       {"augment_ops_per_batch_per_view_api", per_view_ops.called},
                       {"images_per_s", batch / aug_seconds},
                       {"resnet18_step_batch", step_batch},
                       {"resnet18_step_ms", step_seconds * 1e3},
                       {"augment_fraction_of_step", aug_seconds * step_batch / batch / step_seconds}});
  }
  std::cout << nlohmann::json{{"benchmark", "two-view augmentation"}, {"image", "32x32x3"},
                              {"threads", torch::get_num_threads()}, {"results", results}}.dump(2)
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-augment")) return 0;  // no MPI, no data
  return hcl::run_guarded("hcl-bench-augment", [&] { return bench(argc, argv); });
}
