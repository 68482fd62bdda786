// Image datasets loaded once into memory as uint8 tensors (N x C x H x W), labels kept for
// evaluation: Fashion-MNIST / MNIST (IDX, gzip or plain), CIFAR-10 / CIFAR-100 (binary), STL-10
// (binary, column-major; the unlabeled split for pretraining), and a synthetic set for tests and
// benchmarks. A bad file raises hcl::Error naming the file and the problem; nothing is half-loaded.
#pragma once

#include <torch/torch.h>

#include <string>

namespace hcl::data {

struct Dataset {
  std::string name;
  torch::Tensor images;  // uint8, N x C x H x W, contiguous, CPU
  torch::Tensor labels;  // int64, N; -1 where unlabeled
  int64_t num_classes = 0;

  int64_t size() const { return images.defined() ? images.size(0) : 0; }
  int64_t channels() const { return images.size(1); }
  int64_t height() const { return images.size(2); }
  int64_t width() const { return images.size(3); }
};

// The dataset names accepted by load_dataset.
const std::vector<std::string>& dataset_names();

// Channels and image side of a dataset's images (before loading it).
struct ImageShape {
  int64_t channels = 3, size = 32;
};
ImageShape dataset_image_shape(const std::string& name);

// The default folder of a dataset ("" where there is none).
std::string default_data_dir(const std::string& name);

// name: fashion-mnist, mnist, cifar10, cifar100, stl10, synthetic. split: "train" or "test"; for
// stl10 also "unlabeled" and "train+unlabeled" (pretraining). dir "" means default_data_dir(name).
Dataset load_dataset(const std::string& name, const std::string& dir, const std::string& split);

// IDX files (gzip or plain): images (magic 2051, N x rows x cols) and labels (magic 2049, N).
Dataset load_idx(const std::string& images_file, const std::string& labels_file, int64_t num_classes);
// CIFAR binary records: [label][3072 bytes]; CIFAR-100: [coarse][fine][3072 bytes], fine labels.
Dataset load_cifar(const std::vector<std::string>& files, bool cifar100);
// STL-10: X files of N x 3 x 96 x 96 stored column-major; y files with labels 1..10 (optional).
Dataset load_stl10(const std::string& images_file, const std::string& labels_file);
// Random images whose class (i mod classes) shifts the mean brightness of one channel.
Dataset make_synthetic(int64_t n, int64_t channels, int64_t size, int64_t classes, uint64_t seed);

// Reads a whole file, gunzipping when it is gzip-compressed (zlib reads both).
std::string read_file_maybe_gzip(const std::string& path);

}  // namespace hcl::data
