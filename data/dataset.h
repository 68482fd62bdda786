// Image datasets loaded once into memory as uint8 tensors (N x C x H x W), labels kept for
// evaluation: Fashion-MNIST / MNIST (IDX, gzip or plain), CIFAR-10 / CIFAR-100 (binary), STL-10
// (binary, column-major; the unlabeled split for pretraining), and a synthetic set for tests and
// benchmarks. A bad file raises hcl::Error naming the file and the problem; nothing is half-loaded.
#pragma once

#include <torch/torch.h>

#include <array>
#include <string>

#include "core/named_enum.h"

namespace hcl::data {

enum class DatasetKind { FashionMnist, Mnist, Cifar10, Cifar100, Stl10, Synthetic };

// What hcl knows of a dataset before loading it: one row per dataset in the table below, which is
// also the name table of DatasetKind (--dataset, JSON, checkpoints).
struct DatasetInfo {
  DatasetKind value;
  const char* name;
  const char* note;
  int64_t channels, size;              // image shape: channels x size x size
  std::array<double, 3> mean, stddev;  // normalisation constants of the first `channels` channels
  const char* default_dir;             // "" where there is none
  std::array<const char*, 4> splits;   // the splits load_dataset accepts (null after the last)
};

const DatasetInfo& dataset_info(DatasetKind kind);

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

// split: one of dataset_info(kind).splits ("train" or "test"; for stl10 also "unlabeled" and
// "train+unlabeled", for pretraining). dir "" means the dataset's default folder.
Dataset load_dataset(DatasetKind kind, const std::string& dir, const std::string& split);

// Throws hcl::Error naming `dir` when the test split is empty or its images differ in size from
// the train split's (what kNN and linear evaluation compare).
void check_splits(const Dataset& train, const Dataset& test, const std::string& dir);

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

template <>
struct hcl::EnumNames<hcl::data::DatasetKind> {
  using K = data::DatasetKind;
  static constexpr data::DatasetInfo table[] = {
      {K::FashionMnist,
       "fashion-mnist",
       "",
       1,
       28,
       {0.2860},
       {0.3530},
       "/usr/share/datasets/fashion-mnist",
       {"train", "test"}},
      {K::Mnist, "mnist", "", 1, 28, {0.1307}, {0.3081}, "", {"train", "test"}},
      // CIFAR: the reference's constants.
      {K::Cifar10,
       "cifar10",
       "",
       3,
       32,
       {0.4914, 0.4822, 0.4465},
       {0.2023, 0.1994, 0.2010},
       "",
       {"train", "test"}},
      {K::Cifar100,
       "cifar100",
       "",
       3,
       32,
       {0.4914, 0.4822, 0.4465},
       {0.2023, 0.1994, 0.2010},
       "",
       {"train", "test"}},
      {K::Stl10,
       "stl10",
       "",
       3,
       96,
       {0.4467, 0.4398, 0.4066},
       {0.2603, 0.2566, 0.2713},
       "",
       {"train", "test", "unlabeled", "train+unlabeled"}},
      {K::Synthetic, "synthetic", "", 3, 32, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}, "", {"train", "test"}},
  };
};
