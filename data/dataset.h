// Image datasets, labels kept for evaluation. In memory as uint8 tensors (N x C x H x W):
// Fashion-MNIST / MNIST (IDX, gzip or plain), CIFAR-10 / CIFAR-100 (binary), STL-10 (binary,
// column-major; the unlabeled split for pretraining), and a synthetic set for tests and benchmarks.
// Or folders of JPEG/PNG files (ImageNet, Tiny ImageNet), indexed at load and decoded on demand by
// worker threads (data/image_folder.h). A bad file raises hcl::Error naming the file and the
// problem; nothing is half-loaded.
#pragma once

#include <torch/torch.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/named_enum.h"
#include "data/image_codec.h"
#include "data/image_index.h"

namespace hcl::data {

enum class DatasetKind { FashionMnist, Mnist, Cifar10, Cifar100, Stl10, ImageFolder, Synthetic };

class ImageFolder;

// What hcl knows of a dataset before loading it: one row per dataset in the table below, which is
// also the name table of DatasetKind (--dataset, JSON, checkpoints).
struct DatasetInfo {
  DatasetKind value;
  const char* name;
  const char* note;
  int64_t channels, size;              // image shape: channels x size x size (image-folder: default crop)
  std::array<double, 3> mean, stddev;  // normalisation constants of the first `channels` channels
  const char* default_dir;             // "" where there is none
  std::array<const char*, 4> splits;   // the splits load_dataset accepts (null after the last)
  const char* eval_split;              // the labeled split kNN and linear evaluation score
};

const DatasetInfo& dataset_info(DatasetKind kind);

struct Dataset {
  std::string name;
  torch::Tensor images;  // uint8, N x C x H x W, contiguous, CPU; undefined for an image folder
  torch::Tensor labels;  // int64, N; -1 where unlabeled
  int64_t num_classes = 0;
  // Image folders: the index and its decoder (images are decoded on demand, crop-sized).
  std::shared_ptr<const ImageFolder> folder;

  int64_t size() const { return labels.defined() ? labels.size(0) : 0; }
  // The images `indices` (int64, CPU) as uint8 N x C x H x W, whatever holds them: rows of `images`,
  // or an image folder's centred crops decoded by its workers. What the prefetcher and subset read.
  torch::Tensor images_at(const torch::Tensor& indices) const;
  // Whether images are decoded as they are read (an image folder), so that a reader can have the
  // training views cropped then, at the decoded size, instead of from images_at's centred crops.
  bool decodes_on_read() const { return folder != nullptr; }
  int64_t channels() const;
  int64_t height() const;  // image folders: the crop size
  int64_t width() const;
};

// How image folders are read (the in-memory formats ignore it).
// (root, split, cache folder) -> the split's index, as data::index_image_folder.
using FolderIndexer = std::function<ImageIndex(const std::string& root, const std::string& split,
                                               const std::string& cache_dir)>;

struct FolderLoadOptions {
  int64_t crop_size = 224;       // views and evaluation images, in pixels
  int workers = 1;               // decode threads
  bool skip_bad_images = false;  // replace images that cannot be read or decoded (logged, counted)
  int64_t max_image_pixels = kDefaultMaxImagePixels;  // decode_image's limit; 0: none
  std::string index_cache;       // folder of cached indexes to use ("": none; see write_index_cache)
  // Makes a split's index; empty: data::index_image_folder. The trainer passes one that indexes on
  // rank 0 only and shares the result (train/node_datasets.h).
  FolderIndexer indexer;
};

// split: one of dataset_info(kind).splits ("train" or "test"; for stl10 also "unlabeled" and
// "train+unlabeled", for pretraining; for image folders "train", "val", "test" or "unlabeled"). dir
// "" means the dataset's default folder.
Dataset load_dataset(DatasetKind kind, const std::string& dir, const std::string& split,
                     const FolderLoadOptions& folder = {});

// Subsets: the one rule wherever part of a split stands for it (the kNN monitor's bank and test
// images, hcl-eval's --train-size). The images whose indices are the first `limit` of
// permutation(n, 2 * seed + role), in index order; all n when `limit` is 0 or at least n. They are
// the same images whether the split is in memory or an image folder, and --seed moves them.
enum class SubsetRole : uint64_t { Train = 1, Test = 2 };
std::vector<int64_t> subset_indices(int64_t n, int64_t limit, int64_t seed, SubsetRole role);

// The subset_indices images of `d` with their labels, in memory: an image folder's centred crops
// decoded by its workers (what kNN and linear evaluation read); for images already in memory, `d`
// itself when every image is taken, else a copy of the chosen ones.
Dataset subset(const Dataset& d, int64_t limit, int64_t seed, SubsetRole role);

// All of `d` in memory: subset(d, 0, ...).
Dataset in_memory(const Dataset& d);

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
       {"train", "test"},
       "test"},
      {K::Mnist, "mnist", "", 1, 28, {0.1307}, {0.3081}, "", {"train", "test"}, "test"},
      // CIFAR: the reference's constants.
      {K::Cifar10,
       "cifar10",
       "",
       3,
       32,
       {0.4914, 0.4822, 0.4465},
       {0.2023, 0.1994, 0.2010},
       "",
       {"train", "test"},
       "test"},
      {K::Cifar100,
       "cifar100",
       "",
       3,
       32,
       {0.4914, 0.4822, 0.4465},
       {0.2023, 0.1994, 0.2010},
       "",
       {"train", "test"},
       "test"},
      {K::Stl10,
       "stl10",
       "",
       3,
       96,
       {0.4467, 0.4398, 0.4066},
       {0.2603, 0.2566, 0.2713},
       "",
       {"train", "test", "unlabeled", "train+unlabeled"},
       "test"},
      // JPEG/PNG folders (data/image_index.h); ImageNet's constants; evaluated on the val split.
      {K::ImageFolder,
       "image-folder",
       "JPEG/PNG: <data-dir>/<split>/<class>/<image> or <data-dir>/<split>.txt",
       3,
       224,
       {0.485, 0.456, 0.406},
       {0.229, 0.224, 0.225},
       "",
       {"train", "val", "test", "unlabeled"},
       "val"},
      {K::Synthetic, "synthetic", "", 3, 32, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}, "", {"train", "test"}, "test"},
  };
};
