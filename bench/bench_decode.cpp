// Benchmark of the image-folder decode path: JPEG files written by the benchmark itself (photo-like
// ~500x375 cropped to 224, and Tiny ImageNet's 64x64 at 64) decoded with both views' random resized
// crops (ImageFolder::decode_views, what the trainer's workers run), in images per second (an image
// is both of its views) per worker thread and with every core of this machine; and libjpeg-turbo
// alone on the same bytes at full size (no file read, no crop) as the ceiling. Prints one JSON object.
//   hcl-bench-decode [--files 96] [--repeats 3] [--workers 0 (all cores)] [--quality 90]
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "bench/options.h"
#include "bench/timing.h"
#include "core/run_guarded.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/image_folder.h"
#include "dist/version.h"

namespace {

namespace fs = std::filesystem;
using hcl::data::ImageFolder;

// A photo-like image: smooth colour fields plus fine texture (so that JPEG sizes resemble photos').
torch::Tensor photo_like(int64_t h, int64_t w, int64_t seed) {
  torch::manual_seed(static_cast<uint64_t>(seed));
  namespace F = torch::nn::functional;
  const torch::Tensor coarse = F::interpolate(torch::rand({1, 3, 6, 8}) * 200 + 20,
                                              F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
  const torch::Tensor texture = F::interpolate(torch::randn({1, 3, h / 2, w / 2}) * 18,
                                               F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBilinear).align_corners(false));
  return (coarse + texture).squeeze(0).round().clamp(0, 255).to(torch::kUInt8).permute({1, 2, 0}).contiguous();
}

struct Files {
  std::string root;
  std::vector<std::string> bytes;
  double mean_kib = 0;
};

Files write_files(const std::string& root, int64_t n, int64_t h, int64_t w, int quality) {
  Files f{root, {}, 0};
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor hwc = photo_like(h, w, i);
    f.bytes.push_back(hcl::data::encode_jpeg(hwc.data_ptr<uint8_t>(), h, w, 3, quality));
    const fs::path path = fs::path(root) / "train" / ("class" + std::to_string(i % 4)) / (std::to_string(i) + ".jpg");
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary).write(f.bytes.back().data(), static_cast<std::streamsize>(f.bytes.back().size()));
    f.mean_kib += static_cast<double>(f.bytes.back().size()) / 1024.0 / static_cast<double>(n);
  }
  return f;
}

// Images per second of ImageFolder::decode_views over every file, with `workers` threads.
double views_rate(const Files& files, int64_t crop, int workers, int repeats) {
  hcl::data::FolderLoadOptions o;
  o.crop_size = crop;
  o.workers = workers;
  const hcl::data::Dataset d = hcl::data::load_dataset(hcl::data::DatasetKind::ImageFolder, files.root, "train", o);
  const hcl::data::TwoViewAugmenter augmenter(hcl::data::AugmentOptions().output_size(crop), 1);
  const torch::Tensor all = torch::arange(d.size(), torch::kLong);
  int64_t epoch = 0;
  const double s = hcl::bench::median_seconds([&] { d.folder->decode_views(all, epoch++, augmenter, false); }, repeats);
  return static_cast<double>(d.size()) / s;
}

// Images per second of libjpeg-turbo alone: full-size decodes of the bytes in memory, one thread.
double decode_only_rate(const Files& files, int repeats) {
  const double s = hcl::bench::median_seconds(
      [&] {
        for (const std::string& b : files.bytes) hcl::data::decode_image(b, "bench");
      },
      repeats);
  return static_cast<double>(files.bytes.size()) / s;
}

int bench(int argc, char** argv) {
  int64_t files = 96, repeats = 3, workers = 0, quality = 90;
  hcl::bench::po::options_description desc("hcl-bench-decode options");
  desc.add_options()("files", hcl::bench::po::value(&files)->default_value(files), "JPEG files per case")(
      "repeats", hcl::bench::po::value(&repeats)->default_value(repeats), "timed passes (median)")(
      "workers", hcl::bench::po::value(&workers)->default_value(workers), "threads of the all-cores case (0: all cores)")(
      "quality", hcl::bench::po::value(&quality)->default_value(quality), "JPEG quality of the files");
  if (!hcl::bench::parse_options(argc, argv, "hcl-bench-decode [options]", desc)) return 0;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int all = workers > 0 ? static_cast<int>(workers) : cores;
  const fs::path tmp = fs::temp_directory_path() / ("hcl_bench_decode_" + std::to_string(::getpid()));
  struct Case {
    const char* name;
    int64_t h, w, crop;
  };
  nlohmann::json results = nlohmann::json::array();
  for (const Case& c : {Case{"photo 500x375 -> 224", 375, 500, 224}, Case{"tiny-imagenet 64x64 -> 64", 64, 64, 64}}) {
    const Files f = write_files((tmp / std::to_string(c.crop)).string(), files, c.h, c.w, static_cast<int>(quality));
    const double one = views_rate(f, c.crop, 1, static_cast<int>(repeats));
    const double many = views_rate(f, c.crop, all, static_cast<int>(repeats));
    results.push_back({{"case", c.name},
                       {"files", files},
                       {"mean_file_kib", f.mean_kib},
                       {"images_per_s_per_worker", one},
                       {"views_per_s_per_worker", 2 * one},
                       {"workers", all},
                       {"images_per_s_all_workers", many},
                       {"libjpeg_turbo_full_decodes_per_s_one_thread", decode_only_rate(f, static_cast<int>(repeats))}});
  }
  fs::remove_all(tmp);
  std::cout << nlohmann::json{{"benchmark", "image-folder decode + two random resized crops"},
                              {"cores", cores},
                              {"target_images_per_s_per_core_at_224", 400},
                              {"note", "an image is both of its views: one decode, two crops"},
                              {"results", results}}
                   .dump(2)
            << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (hcl::dist::print_version_if_asked(argc, argv, "hcl-bench-decode")) return 0;
  return hcl::run_guarded("hcl-bench-decode", [&] { return bench(argc, argv); });
}
