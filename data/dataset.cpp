// Dataset readers: IDX, CIFAR, STL-10 and synthetic.
#include "data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <random>

#include "core/check.h"
#include "core/paths.h"
#include "data/image_folder.h"
#include "data/sampler.h"

namespace hcl::data {
namespace {

uint32_t big_endian_u32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

torch::Tensor bytes_to_tensor(const std::string& bytes, size_t offset, std::vector<int64_t> shape) {
  torch::Tensor t = torch::empty(shape, torch::kUInt8);
  std::memcpy(t.data_ptr(), bytes.data() + offset, t.numel());
  return t;
}

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& file) {
  if (labels.numel() == 0) return;
  const int64_t lo = labels.min().item<int64_t>(), hi = labels.max().item<int64_t>();
  HCL_REQUIRE(lo >= 0 && hi < num_classes, file, ": labels out of range: found ", lo, "..", hi,
              ", expected 0..", num_classes - 1);
}

std::string join(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

// "<dir>/<stem>" or "<dir>/<stem>.gz", whichever exists.
std::string idx_path(const std::string& dir, const std::string& stem) {
  const std::string plain = join(dir, stem);
  if (std::filesystem::exists(plain)) return plain;
  if (std::filesystem::exists(plain + ".gz")) return plain + ".gz";
  throw Error(detail::concat(plain, "(.gz): no such file (dataset folder: ", dir, ")"));
}

}  // namespace

std::string read_file_maybe_gzip(const std::string& path) {
  HCL_REQUIRE(std::filesystem::is_regular_file(path), path, ": no such file");
  gzFile file = gzopen(path.c_str(), "rb");
  HCL_REQUIRE(file != nullptr, path, ": cannot open: ", std::strerror(errno));
  std::string data;
  std::vector<char> buffer(1 << 20);
  while (true) {
    const int n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      throw Error(path + ": corrupt or truncated compressed data (" + message + ")");
    }
    if (n == 0) break;
    data.append(buffer.data(), n);
  }
  // A gzip stream cut short reads as a short file without an error from gzread: gzclose reports
  // it (Z_BUF_ERROR).
  HCL_REQUIRE(gzclose(file) == Z_OK, path, ": corrupt or truncated compressed data");
  return data;
}

Dataset load_idx(const std::string& images_file, const std::string& labels_file, int64_t num_classes) {
  const std::string img = read_file_maybe_gzip(images_file);
  HCL_REQUIRE(img.size() >= 16, images_file, ": truncated (", img.size(), " bytes, no IDX header)");
  const uint32_t magic = big_endian_u32(img, 0);
  HCL_REQUIRE(magic == 2051, images_file, ": wrong magic number ", magic,
              " (expected 2051 for IDX uint8 images)");
  const int64_t n = big_endian_u32(img, 4), rows = big_endian_u32(img, 8), cols = big_endian_u32(img, 12);
  HCL_REQUIRE(rows >= 1 && cols >= 1, images_file, ": the header says images of ", rows, "x", cols,
              " pixels (rows and columns must be >= 1)");
  // Three 32-bit dimensions can overflow 64 bits when multiplied: no file holds that many bytes.
  int64_t pixels = 0, expected = 0;
  HCL_REQUIRE(!__builtin_mul_overflow(rows, cols, &pixels) && !__builtin_mul_overflow(n, pixels, &expected) &&
                  !__builtin_add_overflow(expected, 16, &expected),
              images_file, ": corrupt header: ", n, " images of ", rows, "x", cols,
              " pixels is more bytes than any file holds");
  HCL_REQUIRE(static_cast<int64_t>(img.size()) == expected, images_file, ": truncated or oversized: ",
              img.size(), " bytes, header says ", n, " images of ", rows, "x", cols, " (", expected, " bytes)");

  const std::string lab = read_file_maybe_gzip(labels_file);
  HCL_REQUIRE(lab.size() >= 8, labels_file, ": truncated (", lab.size(), " bytes, no IDX header)");
  const uint32_t label_magic = big_endian_u32(lab, 0);
  HCL_REQUIRE(label_magic == 2049, labels_file, ": wrong magic number ", label_magic,
              " (expected 2049 for IDX labels)");
  const int64_t label_count = big_endian_u32(lab, 4);
  HCL_REQUIRE(label_count == n, labels_file, ": ", label_count, " labels but ", images_file, " has ",
              n, " images");
  HCL_REQUIRE(static_cast<int64_t>(lab.size()) == 8 + n, labels_file, ": truncated: ", lab.size(),
              " bytes for ", n, " labels");

  Dataset d;
  d.images = bytes_to_tensor(img, 16, {n, 1, rows, cols});
  d.labels = bytes_to_tensor(lab, 8, {n}).to(torch::kLong);
  d.num_classes = num_classes;
  check_labels(d.labels, num_classes, labels_file);
  return d;
}

Dataset load_cifar(const std::vector<std::string>& files, bool cifar100) {
  const int64_t label_bytes = cifar100 ? 2 : 1, record = label_bytes + 3072;
  std::vector<torch::Tensor> images, labels;
  for (const auto& file : files) {
    const std::string bytes = read_file_maybe_gzip(file);
    HCL_REQUIRE(!bytes.empty() && bytes.size() % record == 0, file, ": ", bytes.size(),
                " bytes is not a whole number of ", record, "-byte CIFAR records (truncated?)");
    const int64_t n = static_cast<int64_t>(bytes.size()) / record;
    const torch::Tensor raw = bytes_to_tensor(bytes, 0, {n, record});
    images.push_back(raw.narrow(1, label_bytes, 3072).reshape({n, 3, 32, 32}));
    labels.push_back(raw.select(1, label_bytes - 1).to(torch::kLong));  // fine label for CIFAR-100
    check_labels(labels.back(), cifar100 ? 100 : 10, file);
  }
  Dataset d;
  d.images = torch::cat(images, 0).contiguous();
  d.labels = torch::cat(labels, 0);
  d.num_classes = cifar100 ? 100 : 10;
  return d;
}

Dataset load_stl10(const std::string& images_file, const std::string& labels_file) {
  const std::string bytes = read_file_maybe_gzip(images_file);
  const int64_t per_image = 3 * 96 * 96;
  HCL_REQUIRE(!bytes.empty() && bytes.size() % per_image == 0, images_file, ": ", bytes.size(),
              " bytes is not a whole number of 3x96x96 images (truncated?)");
  const int64_t n = static_cast<int64_t>(bytes.size()) / per_image;
  Dataset d;
  // Column-major per channel: stored as [N][C][W][H]; transpose to N x C x H x W.
  d.images = bytes_to_tensor(bytes, 0, {n, 3, 96, 96}).transpose(2, 3).contiguous();
  d.num_classes = 10;
  if (labels_file.empty()) {
    d.labels = torch::full({n}, -1, torch::kLong);
    return d;
  }
  const std::string lab = read_file_maybe_gzip(labels_file);
  HCL_REQUIRE(static_cast<int64_t>(lab.size()) == n, labels_file, ": ", lab.size(), " labels but ",
              images_file, " has ", n, " images");
  d.labels = bytes_to_tensor(lab, 0, {n}).to(torch::kLong) - 1;  // stored as 1..10
  check_labels(d.labels, 10, labels_file + " (labels stored as 1..10)");
  return d;
}

Dataset make_synthetic(int64_t n, int64_t channels, int64_t size, int64_t classes, uint64_t seed) {
  HCL_REQUIRE(n >= 1 && channels >= 1 && size >= 1 && classes >= 1,
              "synthetic dataset: sizes must be positive");
  torch::Tensor labels = torch::arange(n, torch::kLong).remainder(classes);
  std::mt19937_64 rng(seed);
  torch::Tensor images = torch::empty({n, channels, size, size}, torch::kUInt8);
  auto* p = images.data_ptr<uint8_t>();
  for (int64_t i = 0; i < images.numel(); ++i) p[i] = static_cast<uint8_t>(rng() % 160);
  // Class c brightens channel (c mod C) by an amount that grows with c: learnable structure.
  const torch::Tensor amount =
      (8 + (87 * labels) / std::max<int64_t>(1, classes - 1)).to(torch::kUInt8).view({n, 1, 1});
  const torch::Tensor rows = torch::arange(n, torch::kLong), channel = labels.remainder(channels);
  images.index_put_({rows, channel}, images.index({rows, channel}) + amount);
  Dataset d;
  d.images = images;
  d.labels = labels;
  d.num_classes = classes;
  return d;
}

const DatasetInfo& dataset_info(DatasetKind kind) {
  for (const DatasetInfo& info : EnumNames<DatasetKind>::table)
    if (info.value == kind) return info;
  HCL_ASSERT(false, "dataset ", static_cast<int>(kind), " has no row in the dataset table");
  return EnumNames<DatasetKind>::table[0];  // not reached
}

namespace {
Dataset load_split(const DatasetInfo& info, const std::string& dir, const std::string& split);
Dataset load_folder(const DatasetInfo& info, const std::string& dir, const std::string& split,
                    const FolderLoadOptions& o);
}  // namespace

int64_t Dataset::channels() const { return folder ? 3 : images.size(1); }
int64_t Dataset::height() const { return folder ? folder->options().crop_size() : images.size(2); }
int64_t Dataset::width() const { return folder ? folder->options().crop_size() : images.size(3); }

Dataset load_dataset(DatasetKind kind, const std::string& dir_in, const std::string& split,
                     const FolderLoadOptions& folder) {
  const DatasetInfo& info = dataset_info(kind);
  const std::string dir = dir_in.empty() ? info.default_dir : dir_in;
  try {
    if (kind == DatasetKind::ImageFolder) return load_folder(info, dir, split, folder);
    return load_split(info, dir, split);
  } catch (const std::filesystem::filesystem_error& e) {  // a symlink loop, a folder we may not read
    throw Error(detail::concat("dataset ", info.name, " (--data-dir '", dir, "'): ", describe(e)));
  }
}

std::vector<int64_t> subset_indices(int64_t n, int64_t limit, int64_t seed, SubsetRole role) {
  if (limit <= 0 || limit >= n) {
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), int64_t{0});
    return all;
  }
  // In index order: an image folder's chosen files are read in the order they lie on disk.
  std::vector<int64_t> order = permutation(n, 2 * static_cast<uint64_t>(seed) + static_cast<uint64_t>(role));
  order.resize(static_cast<size_t>(limit));
  std::sort(order.begin(), order.end());
  return order;
}

torch::Tensor Dataset::images_at(const torch::Tensor& indices) const {
  return folder ? folder->decode_centred(indices) : images.index_select(0, indices);
}

Dataset subset(const Dataset& d, int64_t limit, int64_t seed, SubsetRole role) {
  const bool all = limit <= 0 || limit >= d.size();
  if (all && !d.decodes_on_read()) return d;
  const torch::Tensor chosen = torch::tensor(subset_indices(d.size(), limit, seed, role), torch::kLong);
  Dataset out;
  out.name = d.name;
  out.num_classes = d.num_classes;
  out.labels = d.labels.index_select(0, chosen);
  out.images = d.images_at(chosen).contiguous();
  return out;
}

Dataset in_memory(const Dataset& d) { return subset(d, 0, 0, SubsetRole::Train); }

void check_splits(const Dataset& train, const Dataset& test, const std::string& dir_in) {
  const std::string dir = dir_in.empty() ? "the default folder" : "'" + dir_in + "'";
  HCL_REQUIRE(test.size() > 0, "dataset ", train.name, " (--data-dir ", dir,
              "): the test split has no images (the kNN monitor and linear evaluation score them)");
  const bool same_shape = train.channels() == test.channels() && train.height() == test.height() &&
                          train.width() == test.width();
  HCL_REQUIRE(same_shape, "dataset ", train.name,
              " (--data-dir ", dir, "): train images are ", train.channels(), "x", train.height(), "x",
              train.width(), " but test images ", test.channels(), "x", test.height(), "x", test.width(),
              " (channels x height x width); both splits must have one size");
}

namespace {
Dataset load_folder(const DatasetInfo& info, const std::string& dir, const std::string& split,
                    const FolderLoadOptions& o) {
  HCL_REQUIRE(!dir.empty(), "dataset ", info.name, ": no data directory given (--data-dir)");
  ImageIndex index = o.indexer ? o.indexer(dir, split, o.index_cache) : index_image_folder(dir, split, o.index_cache);
  Dataset d;
  d.name = info.name;
  d.num_classes = static_cast<int64_t>(index.classes.size());
  d.labels = torch::tensor(index.labels, torch::kLong);
  d.folder = std::make_shared<const ImageFolder>(
      std::move(index),
      ImageFolderOptions().crop_size(o.crop_size).workers(o.workers).skip_bad_images(o.skip_bad_images)
          .max_pixels(o.max_image_pixels));
  return d;
}

Dataset load_split(const DatasetInfo& info, const std::string& dir, const std::string& split) {
  const DatasetKind kind = info.value;
  const std::string name = info.name;
  const bool train = split == "train";
  std::string allowed;
  bool known_split = false;
  for (size_t i = 0; i < info.splits.size() && info.splits[i] != nullptr; ++i) {
    const bool last = i + 1 == info.splits.size() || info.splits[i + 1] == nullptr;
    allowed += std::string(i == 0 ? "" : last ? " or " : ", ") + info.splits[i];
    known_split = known_split || split == info.splits[i];
  }
  HCL_REQUIRE(known_split, "dataset ", name, ": unknown split '", split, "' (expected ", allowed, ")");
  if (kind != DatasetKind::Synthetic)
    HCL_REQUIRE(!dir.empty(), "dataset ", name, ": no data directory given (--data-dir)");
  Dataset d;
  switch (kind) {
    case DatasetKind::FashionMnist:
    case DatasetKind::Mnist: {
      const std::string prefix = train ? "train" : "t10k";
      d = load_idx(idx_path(dir, prefix + "-images-idx3-ubyte"), idx_path(dir, prefix + "-labels-idx1-ubyte"),
                   10);
      break;
    }
    case DatasetKind::Cifar10: {
      std::vector<std::string> files;
      if (train)
        for (int i = 1; i <= 5; ++i) files.push_back(join(dir, "data_batch_" + std::to_string(i) + ".bin"));
      else
        files.push_back(join(dir, "test_batch.bin"));
      d = load_cifar(files, false);
      break;
    }
    case DatasetKind::Cifar100: d = load_cifar({join(dir, train ? "train.bin" : "test.bin")}, true); break;
    case DatasetKind::Stl10:
      if (split == "unlabeled") {
        d = load_stl10(join(dir, "unlabeled_X.bin"), "");
      } else if (split == "train+unlabeled") {
        Dataset labeled = load_stl10(join(dir, "train_X.bin"), join(dir, "train_y.bin"));
        Dataset unlabeled = load_stl10(join(dir, "unlabeled_X.bin"), "");
        d.images = torch::cat({labeled.images, unlabeled.images}, 0);
        d.labels = torch::cat({labeled.labels, unlabeled.labels}, 0);
        d.num_classes = 10;
      } else {
        d = load_stl10(join(dir, split + "_X.bin"), join(dir, split + "_y.bin"));
      }
      break;
    case DatasetKind::ImageFolder: HCL_ASSERT(false, "image folders load through load_folder"); break;
    case DatasetKind::Synthetic:
      d = make_synthetic(train ? 4096 : 1024, info.channels, info.size, 10, train ? 1 : 2);
      break;
  }
  d.name = name;
  return d;
}
}  // namespace

}  // namespace hcl::data
