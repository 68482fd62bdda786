// Tests of data/dataset: small files in each format written and read back, every kind of bad file,
// and the real Fashion-MNIST when it is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "data/augment.h"
#include "data/dataset.h"

namespace hcl::data {
namespace {

namespace fs = std::filesystem;

class DatasetFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hcl_test_data_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  void write(const std::string& name, const std::string& bytes, bool gzip = false) const {
    if (gzip) {
      gzFile f = gzopen(path(name).c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(path(name), std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
  }

  static std::string be32(uint32_t v) {
    return {char(v >> 24), char((v >> 16) & 255), char((v >> 8) & 255), char(v & 255)};
  }
  // IDX: n images of rows x cols with pixel (i, r, c) = i + r + c; labels i mod 10.
  static std::string idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t magic = 2051) {
    std::string s = be32(magic) + be32(n) + be32(rows) + be32(cols);
    for (uint32_t i = 0; i < n; ++i)
      for (uint32_t r = 0; r < rows; ++r)
        for (uint32_t c = 0; c < cols; ++c) s.push_back(char(i + r + c));
    return s;
  }
  static std::string idx_labels(uint32_t n, uint32_t magic = 2049, int offset = 0) {
    std::string s = be32(magic) + be32(n);
    for (uint32_t i = 0; i < n; ++i) s.push_back(char(i % 10 + offset));
    return s;
  }

  void expect_error(const std::function<void()>& call, const std::string& fragment) const {
    try {
      call();
      ADD_FAILURE() << "no exception; expected '" << fragment << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }

  fs::path dir_;
};

TEST_F(DatasetFiles, IdxPlainAndGzipReadBack) {
  for (bool gzip : {false, true}) {
    const std::string suffix = gzip ? ".gz" : "";
    write("train-images-idx3-ubyte" + suffix, idx_images(12, 5, 4), gzip);
    write("train-labels-idx1-ubyte" + suffix, idx_labels(12), gzip);
    const Dataset d = load_dataset(DatasetKind::FashionMnist, dir_.string(), "train");
    EXPECT_EQ(d.images.sizes(), (std::vector<int64_t>{12, 1, 5, 4}));
    EXPECT_EQ(d.images.scalar_type(), torch::kUInt8);
    EXPECT_EQ(d.images[7][0][3][2].item<int>(), 7 + 3 + 2);
    EXPECT_EQ(d.labels[11].item<int64_t>(), 1);
    EXPECT_EQ(d.num_classes, 10);
    fs::remove(path("train-images-idx3-ubyte" + suffix));
    fs::remove(path("train-labels-idx1-ubyte" + suffix));
  }
}

TEST_F(DatasetFiles, IdxBadFilesAreNamed) {
  const std::string img = path("i"), lab = path("l");
  expect_error([&] { load_idx(img, lab, 10); }, img + ": no such file");
  write("i", idx_images(4, 3, 3, 2049));
  write("l", idx_labels(4));
  expect_error([&] { load_idx(img, lab, 10); }, img + ": wrong magic number 2049");
  write("i", idx_images(4, 3, 3).substr(0, 30));
  expect_error([&] { load_idx(img, lab, 10); }, img + ": truncated");
  write("i", idx_images(4, 3, 3));
  write("l", idx_labels(5));
  expect_error([&] { load_idx(img, lab, 10); }, "5 labels but " + img + " has 4 images");
  write("l", idx_labels(4, 2051));
  expect_error([&] { load_idx(img, lab, 10); }, lab + ": wrong magic number 2051");
  write("l", idx_labels(4, 2049, 7));
  expect_error([&] { load_idx(img, lab, 10); }, "labels out of range: found 7..10");
  // A gzip stream cut short.
  write("full.gz", idx_images(40, 8, 8), true);
  std::string gz;
  {
    std::ifstream in(path("full.gz"), std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), {});
  }
  write("cut", gz.substr(0, gz.size() / 2));
  write("l", idx_labels(40));
  expect_error([&] { load_idx(path("cut"), lab, 10); }, "corrupt or truncated");
}

TEST_F(DatasetFiles, CifarTenAndHundred) {
  std::string ten, hundred;
  for (int i = 0; i < 3; ++i) {
    ten.push_back(char(i));
    hundred.push_back(char(i));       // coarse
    hundred.push_back(char(50 + i));  // fine
    for (int k = 0; k < 3072; ++k) {
      ten.push_back(char((i * 7 + k) % 251));
      hundred.push_back(char((i * 7 + k) % 251));
    }
  }
  for (int b = 1; b <= 5; ++b) write("data_batch_" + std::to_string(b) + ".bin", ten);
  write("test_batch.bin", ten);
  write("train.bin", hundred);
  const Dataset c10 = load_dataset(DatasetKind::Cifar10, dir_.string(), "train");
  EXPECT_EQ(c10.images.sizes(), (std::vector<int64_t>{15, 3, 32, 32}));
  // Channel planes in R, G, B order, rows of 32.
  EXPECT_EQ(c10.images[1][2][3][4].item<int>(), (1 * 7 + 2 * 1024 + 3 * 32 + 4) % 251);
  EXPECT_EQ(c10.labels[4].item<int64_t>(), 1);
  const Dataset c100 = load_dataset(DatasetKind::Cifar100, dir_.string(), "train");
  EXPECT_EQ(c100.size(), 3);
  EXPECT_EQ(c100.labels[2].item<int64_t>(), 52);
  EXPECT_EQ(c100.num_classes, 100);
  write("test_batch.bin", ten.substr(0, 5000));
  expect_error([&] { load_dataset(DatasetKind::Cifar10, dir_.string(), "test"); }, "not a whole number");
  std::string bad = ten;
  bad[0] = char(12);
  write("test_batch.bin", bad);
  expect_error([&] { load_dataset(DatasetKind::Cifar10, dir_.string(), "test"); }, "labels out of range");
}

TEST_F(DatasetFiles, Stl10IsColumnMajor) {
  std::string x;
  for (int i = 0; i < 2; ++i)
    for (int c = 0; c < 3; ++c)
      for (int col = 0; col < 96; ++col)
        for (int row = 0; row < 96; ++row) x.push_back(char((i + c + 2 * row + col) % 256));
  write("train_X.bin", x);
  write("train_y.bin", std::string{char(1), char(10)});
  write("unlabeled_X.bin", x);
  const Dataset d = load_dataset(DatasetKind::Stl10, dir_.string(), "train");
  EXPECT_EQ(d.images.sizes(), (std::vector<int64_t>{2, 3, 96, 96}));
  EXPECT_EQ(d.images[1][2][5][9].item<int>(), (1 + 2 + 2 * 5 + 9) % 256);  // [row 5][col 9]
  EXPECT_EQ(d.labels[0].item<int64_t>(), 0);
  EXPECT_EQ(d.labels[1].item<int64_t>(), 9);
  const Dataset both = load_dataset(DatasetKind::Stl10, dir_.string(), "train+unlabeled");
  EXPECT_EQ(both.size(), 4);
  EXPECT_EQ(both.labels[3].item<int64_t>(), -1);
  write("train_y.bin", std::string{char(1), char(11)});
  expect_error([&] { load_dataset(DatasetKind::Stl10, dir_.string(), "train"); }, "labels out of range");
  write("train_y.bin", std::string{char(1)});
  expect_error([&] { load_dataset(DatasetKind::Stl10, dir_.string(), "train"); }, "1 labels but");
}

TEST_F(DatasetFiles, UnknownNamesAndSplits) {
  expect_error([&] { parse<DatasetKind>("dataset", "imagenet"); }, "--dataset: unknown value 'imagenet'");
  expect_error([&] { load_dataset(DatasetKind::Cifar10, dir_.string(), "val"); }, "unknown split 'val'");
  expect_error([&] { load_dataset(DatasetKind::Cifar10, "", "train"); }, "no data directory");
  expect_error([&] { load_dataset(DatasetKind::Stl10, dir_.string(), "val"); },
               "dataset stl10: unknown split 'val' (expected train, test, unlabeled or train+unlabeled)");
  expect_error([&] { load_dataset(DatasetKind::Synthetic, "", "unlabeled"); },
               "dataset synthetic: unknown split 'unlabeled' (expected train or test)");
}

// The dataset table: each row's name parses to its kind, normalisation has one value per channel,
// and what it says of the synthetic set is what loading it gives.
TEST(DatasetTable, RowsAgreeWithTheirNamesAndTheLoadedData) {
  int rows = 0;
  for (const DatasetInfo& info : EnumNames<DatasetKind>::table) {
    ++rows;
    SCOPED_TRACE(info.name);
    EXPECT_EQ(parse<DatasetKind>("dataset", info.name), info.value);
    EXPECT_EQ(&dataset_info(info.value), &info);
    const auto [mean, stddev] = dataset_normalization(info.value, info.channels);
    EXPECT_EQ(static_cast<int64_t>(mean.size()), info.channels);
    EXPECT_EQ(static_cast<int64_t>(stddev.size()), info.channels);
    for (double s : stddev) EXPECT_GT(s, 0);
    EXPECT_STREQ(info.splits[0], "train");
    bool eval_split_listed = false;  // kNN and hcl-eval score a split the dataset has
    for (const char* split : info.splits) eval_split_listed = eval_split_listed || (split && std::string(split) == info.eval_split);
    EXPECT_TRUE(eval_split_listed) << info.eval_split;
  }
  EXPECT_EQ(rows, 7);
  const Dataset synthetic = load_dataset(DatasetKind::Synthetic, "", "test");
  const DatasetInfo& info = dataset_info(DatasetKind::Synthetic);
  EXPECT_EQ(synthetic.channels(), info.channels);
  EXPECT_EQ(synthetic.height(), info.size);
  EXPECT_EQ(synthetic.name, "synthetic");
  // The constants of the reference for CIFAR, and a synthetic set of other channel counts.
  EXPECT_EQ(dataset_normalization(DatasetKind::Cifar10, 3).first, (std::vector<double>{0.4914, 0.4822, 0.4465}));
  EXPECT_EQ(dataset_normalization(DatasetKind::Synthetic, 1).first, (std::vector<double>{0.5}));
}

TEST(Dataset, SyntheticIsDeterministicAndBalanced) {
  const Dataset a = make_synthetic(100, 3, 8, 10, 5), b = make_synthetic(100, 3, 8, 10, 5);
  EXPECT_TRUE(torch::equal(a.images, b.images));
  EXPECT_EQ(a.labels.bincount().min().item<int64_t>(), 10);
  EXPECT_FALSE(torch::equal(a.images, make_synthetic(100, 3, 8, 10, 6).images));
}

TEST(Dataset, RealFashionMnistWhenInstalled) {
  const std::string dir = std::string(dataset_info(DatasetKind::FashionMnist).default_dir);
  if (!fs::exists(dir + "/train-images-idx3-ubyte.gz") && !fs::exists(dir + "/train-images-idx3-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << dir;
  const Dataset train = load_dataset(DatasetKind::FashionMnist, "", "train");
  const Dataset test = load_dataset(DatasetKind::FashionMnist, "", "test");
  EXPECT_EQ(train.images.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(test.size(), 10000);
  EXPECT_TRUE(torch::equal(train.labels.bincount(), torch::full({10}, 6000, torch::kLong)));
  EXPECT_TRUE(torch::equal(test.labels.bincount(), torch::full({10}, 1000, torch::kLong)));
}

}  // namespace
}  // namespace hcl::data
