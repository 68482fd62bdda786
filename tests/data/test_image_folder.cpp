// data/image_index.h and data/image_folder.h on folders the tests write: labels and pixels round-trip
// through both layouts (folders of mixed JPEG/PNG/grey files, and a file list), the index cache is
// reused until the folder changes, views cut at decode time equal those of the same images in
// memory, the global batch is the same for W = 1, 2 and 4 with any number of workers, a resumed
// pipeline makes the same views, and every bad input gets an error naming it.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>

#include "core/check.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/image_folder.h"
#include "data/image_index.h"
#include "data/sampler.h"
#include "data/view_pipeline.h"
#include "tests/support/errors.h"
#include "tests/support/image_files.h"

namespace hcl::data {
namespace {

namespace fs = std::filesystem;
using hcl::testing::encode;
using hcl::testing::FileKind;
using hcl::testing::smooth_image;
using hcl::testing::TempFolder;
using hcl::testing::write_bytes;

const char* const kClasses[] = {"cat", "dog", "eel"};

// root/train/<class>/img<i>.<ext>: 4 images per class of size x size, class 0 JPEG, class 1 PNG,
// class 2 grey PNG and one CMYK JPEG. Returns the RGB each file decodes to (index order).
std::vector<torch::Tensor> write_folder(const std::string& root, int64_t size, bool lossless = false) {
  std::vector<torch::Tensor> images;
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < 4; ++i) {
      torch::Tensor image = smooth_image(size, size + 8 * i, 10 * c + i);
      FileKind kind = c == 0 ? (lossless ? FileKind::Png : FileKind::Jpeg) : c == 1 ? FileKind::Png : FileKind::GreyPng;
      if (c == 2 && i == 3 && !lossless) kind = FileKind::CmykJpeg;
      const bool jpeg = kind == FileKind::Jpeg || kind == FileKind::CmykJpeg;
      write_bytes(root + "/train/" + kClasses[c] + "/img" + std::to_string(i) + (jpeg ? ".JPEG" : ".png"),
                  encode(image, kind));
      images.push_back(kind == FileKind::GreyPng ? image.narrow(0, 0, 1).expand({3, -1, -1}).contiguous() : image);
    }
  return images;
}

TEST(ImageIndex, FolderLayoutListsClassesAndFilesInOrder) {
  TempFolder root;
  write_folder(root.str(), 16);
  write_bytes(root / "train/dog/.DS_Store", "x");  // hidden: ignored
  const ImageIndex index = index_image_folder(root.str(), "train", "");
  EXPECT_EQ(index.classes, (std::vector<std::string>{"cat", "dog", "eel"}));
  ASSERT_EQ(index.size(), 12);
  EXPECT_EQ(index.files[0], "train/cat/img0.JPEG");
  EXPECT_EQ(index.files[11], "train/eel/img3.JPEG");
  EXPECT_EQ(index.labels, (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}));
}

TEST(ImageIndex, ListLayoutMapsClassesThroughTheTrainFolders) {
  TempFolder root;
  write_folder(root.str(), 16);
  write_bytes(root / "val.txt", "# path class\ntrain/eel/img1.png eel\ntrain/cat/img0.JPEG\tcat\n\ntrain/dog/img2.png\n");
  const ImageIndex index = index_image_folder(root.str(), "val", "");
  EXPECT_EQ(index.classes, (std::vector<std::string>{"cat", "dog", "eel"}));
  EXPECT_EQ(index.files, (std::vector<std::string>{"train/eel/img1.png", "train/cat/img0.JPEG", "train/dog/img2.png"}));
  EXPECT_EQ(index.labels, (std::vector<int64_t>{2, 0, -1}));
  write_bytes(root / "bad.txt", "train/cat/img0.JPEG lion\n");
  EXPECT_ERROR(index_image_folder(root.str(), "bad", ""), "bad.txt:1: class 'lion' is not a folder of");
  write_bytes(root / "gone.txt", "train/cat/img0.JPEG cat\ntrain/cat/img9.JPEG cat\n");
  EXPECT_ERROR(index_image_folder(root.str(), "gone", ""), "gone.txt:2: no such file");
}

TEST(ImageIndex, CacheIsReusedUntilTheFolderChanges) {
  TempFolder root, cache;
  write_folder(root.str(), 16);
  const ImageIndex first = index_image_folder(root.str(), "train", cache.str());
  EXPECT_FALSE(first.from_cache);
  write_index_cache(first, cache.str());
  const ImageIndex again = index_image_folder(root.str(), "train", cache.str());
  EXPECT_TRUE(again.from_cache);
  EXPECT_EQ(again.files, first.files);
  EXPECT_EQ(again.labels, first.labels);
  EXPECT_EQ(again.classes, first.classes);
  EXPECT_EQ(again.fingerprint(), first.fingerprint());
  // A file added to a class folder changes that folder's stamp: the index is built again.
  write_bytes(root / "train/dog/img9.png", encode(smooth_image(16, 16, 99), FileKind::Png));
  const ImageIndex changed = index_image_folder(root.str(), "train", cache.str());
  EXPECT_FALSE(changed.from_cache);
  EXPECT_EQ(changed.size(), 13);
  EXPECT_NE(changed.fingerprint(), first.fingerprint());
}

// The text form (the cache's, and what rank 0 sends the other ranks) gives back the same index.
TEST(ImageIndex, TextRoundTripsAndAnythingElseIsAnError) {
  TempFolder root;
  write_folder(root.str(), 16);
  write_bytes(root / "train/cat/notes.txt", "x");
  const ImageIndex index = index_image_folder(root.str(), "train", "");
  const std::string text = serialize_index(index);
  const ImageIndex back = parse_index(text);
  EXPECT_EQ(back.root, index.root);
  EXPECT_EQ(back.split, "train");
  EXPECT_EQ(back.classes, index.classes);
  EXPECT_EQ(back.files, index.files);
  EXPECT_EQ(back.labels, index.labels);
  EXPECT_EQ(back.other_files, 1);
  EXPECT_EQ(back.other_example, "train/cat/notes.txt");
  EXPECT_EQ(back.stamps, index.stamps);
  EXPECT_EQ(back.fingerprint(), index.fingerprint());
  EXPECT_FALSE(back.from_cache);
  EXPECT_ERROR(parse_index("not an index"), "not the text of an image index");
  EXPECT_ERROR(parse_index(text.substr(0, text.size() / 2)), "not the text of an image index");
}

TEST(ImageIndex, BadFoldersAreErrorsNamingThem) {
  TempFolder root;
  write_folder(root.str(), 16);
  EXPECT_ERROR(index_image_folder(root / "nowhere", "train", ""), "nowhere: no such folder");
  EXPECT_ERROR(index_image_folder(root.str(), "val", ""), "split 'val' not found");
  write_bytes(root / "train/dog/dog_boxes.txt", "annotations");  // as Tiny ImageNet has: left out, counted
  const ImageIndex others = index_image_folder(root.str(), "train", "");
  EXPECT_EQ(others.size(), 12);
  EXPECT_EQ(others.other_files, 1);
  EXPECT_EQ(others.other_example, "train/dog/dog_boxes.txt");
  // A FIFO named like an image (opening it would block): left out of the index and counted, and a
  // read of it is an error at once.
  ASSERT_EQ(::mkfifo((root / "train/dog/fifo.png").c_str(), 0644), 0);
  EXPECT_EQ(index_image_folder(root.str(), "train", "").size(), 12);
  EXPECT_EQ(index_image_folder(root.str(), "train", "").other_files, 2);
  EXPECT_ERROR(read_whole_file(root / "train/dog/fifo.png"), "fifo.png': not a regular file (a FIFO)");
  fs::remove(root / "train/dog/fifo.png");
  write_bytes(root / "list.txt", "train/dog/dog_boxes.txt dog\n");
  EXPECT_ERROR(index_image_folder(root.str(), "list", ""), "list.txt:1: 'train/dog/dog_boxes.txt' is not an image file");
  fs::create_directories(root / "train/fox");
  EXPECT_ERROR(index_image_folder(root.str(), "train", ""), "train/fox: empty class folder");
  fs::remove_all(root / "train");
  fs::create_directories(root / "train");
  EXPECT_ERROR(index_image_folder(root.str(), "train", ""), "train: no class folders");
}

Dataset load(const std::string& root, int64_t crop, int workers, bool skip = false) {
  FolderLoadOptions o;
  o.crop_size = crop;
  o.workers = workers;
  o.skip_bad_images = skip;
  return load_dataset(DatasetKind::ImageFolder, root, "train", o);
}

TEST(ImageFolder, EvaluationImagesAreTheCentredSquares) {
  TempFolder root;
  const std::vector<torch::Tensor> images = write_folder(root.str(), 16, /*lossless=*/true);
  const Dataset d = in_memory(load(root.str(), 16, 2));
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{12, 3, 16, 16}));
  EXPECT_EQ(d.num_classes, 3);
  EXPECT_EQ(d.labels[5].item<int64_t>(), 1);
  for (int64_t i = 0; i < 12; ++i) {  // lossless files, square crop at its own size: exact pixels
    const int64_t w = images[i].size(2), x0 = (w - 16) / 2;
    EXPECT_TRUE(torch::equal(d.images[i], images[i].narrow(2, x0, 16))) << i;
  }
}

// One subset rule for both forms of a dataset: the same images with their labels, in index order;
// the seed and the role move them; a limit of 0 or beyond the split takes all (no copy in memory).
TEST(Subset, OneRuleForFoldersAndImagesInMemory) {
  TempFolder root;
  write_folder(root.str(), 16, /*lossless=*/true);
  const Dataset folder = load(root.str(), 16, 1);
  const Dataset memory = in_memory(folder);
  for (int64_t seed : {0, 1, 7}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::vector<int64_t> chosen = subset_indices(12, 5, seed, SubsetRole::Train);
    ASSERT_EQ(chosen.size(), 5u);
    EXPECT_TRUE(std::is_sorted(chosen.begin(), chosen.end()));
    const Dataset from_folder = subset(folder, 5, seed, SubsetRole::Train);
    const Dataset from_memory = subset(memory, 5, seed, SubsetRole::Train);
    EXPECT_TRUE(torch::equal(from_folder.images, from_memory.images));
    EXPECT_TRUE(torch::equal(from_folder.labels, from_memory.labels));
    const torch::Tensor index = torch::tensor(chosen, torch::kLong);
    EXPECT_TRUE(torch::equal(from_memory.images, memory.images.index_select(0, index)));
    EXPECT_TRUE(torch::equal(from_memory.labels, memory.labels.index_select(0, index)));
  }
  EXPECT_NE(subset_indices(1000, 10, 0, SubsetRole::Train), subset_indices(1000, 10, 1, SubsetRole::Train));
  EXPECT_NE(subset_indices(1000, 10, 0, SubsetRole::Train), subset_indices(1000, 10, 0, SubsetRole::Test));
  EXPECT_EQ(subset_indices(4, 0, 3, SubsetRole::Test), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(subset_indices(4, 9, 3, SubsetRole::Test), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_TRUE(subset(memory, 12, 3, SubsetRole::Test).images.is_same(memory.images));
  EXPECT_EQ(subset(folder, 0, 3, SubsetRole::Test).size(), 12);
}

void expect_views_equal(const Dataset& folder, const Dataset& memory, const TwoViewAugmenter& augmenter, double levels);

// Views cut at decode time equal the in-memory pipeline's views of the same pixels: same crop
// boxes, flips and colour draws (the crops enlarge here, where both resample bilinearly).
TEST(ImageFolder, ViewsEqualThoseOfTheSameImagesInMemory) {
  TempFolder root;
  for (int i = 0; i < 6; ++i)
    write_bytes(root / ("train/a/" + std::to_string(i) + ".png"), encode(smooth_image(24, 24, i), FileKind::Png));
  const Dataset folder = load(root.str(), 24, 3);
  const Dataset memory = in_memory(folder);
  // Without colour jitter the views differ by the uint8 rounding at decode time alone (half a
  // level, through the normalisation by std 0.5); jitter amplifies it (contrast and saturation up
  // to 1.4 each, then the hue rotation): 3 levels.
  const TwoViewAugmenter plain(AugmentOptions().output_size(24).scale_min(0.2).jitter_p(0).grayscale_p(0), 17);
  const TwoViewAugmenter jittered(AugmentOptions().output_size(24).scale_min(0.2), 17);
  for (const auto& [augmenter, levels] : {std::pair<const TwoViewAugmenter*, double>{&plain, 0.51}, {&jittered, 3.0}})
    expect_views_equal(folder, memory, *augmenter, levels);
}

void expect_views_equal(const Dataset& folder, const Dataset& memory, const TwoViewAugmenter& augmenter, double levels) {
  const torch::Tensor indices = torch::tensor({4, 0, 5, 2}, torch::kLong);
  for (int64_t epoch : {0, 3}) {
    const torch::Tensor cropped = folder.folder->decode_views(indices, epoch, augmenter, false);
    ASSERT_EQ(cropped.sizes(), (std::vector<int64_t>{4, 3, 48, 24}));
    const torch::Tensor from_folder =
        augmenter.apply_views(cropped, augmenter.sample_cropped_views(indices, epoch, 3));
    const torch::Tensor from_memory = augmenter.views(memory.images.index_select(0, indices), indices, epoch);
    EXPECT_LE((from_folder - from_memory).abs().max().item<double>(), levels / 255 / 0.5 + 1e-5) << epoch;
  }
}

// The global batch is the same set of views for W = 1, 2, 4, through the sampler, the workers and
// the pipeline; and a pipeline started at a later step (a resume) makes the same views.
TEST(ImageFolder, GlobalBatchIsTheSameForAnyRanksAndWorkers) {
  TempFolder root;
  write_folder(root.str(), 20);
  const TwoViewAugmenter augmenter(AugmentOptions().output_size(16), 5);
  const int64_t global = 8;
  auto rank_views = [&](int world, int rank, int workers, int64_t epoch, int64_t step) {
    const Dataset d = load(root.str(), 16, workers);
    DistributedSampler sampler(d.size(), global / world, rank, world, 3);
    ViewPipeline pipeline(d, sampler, augmenter, torch::kCPU);
    return pipeline.views(epoch, step);
  };
  for (const auto& [epoch, step] : {std::pair<int64_t, int64_t>{0, 0}, {2, 0}}) {
    const torch::Tensor one = rank_views(1, 0, 1, epoch, step);
    for (int world : {2, 4}) {
      std::vector<torch::Tensor> first, second;
      for (int r = 0; r < world; ++r) {
        const torch::Tensor v = rank_views(world, r, 1 + r % 3, epoch, step);
        first.push_back(v.narrow(0, 0, v.size(0) / 2));
        second.push_back(v.narrow(0, v.size(0) / 2, v.size(0) / 2));
      }
      EXPECT_TRUE(torch::equal(one, torch::cat({torch::cat(first), torch::cat(second)})))
          << "W = " << world << " epoch " << epoch;
    }
  }
}

// A pipeline that starts at a later step (a resume) hands out the views of the uninterrupted run.
TEST(ImageFolder, ResumedPipelineMakesTheUninterruptedViews) {
  TempFolder root;
  write_folder(root.str(), 20);
  const TwoViewAugmenter augmenter(AugmentOptions().output_size(16), 9);
  const Dataset d = load(root.str(), 16, 2);
  DistributedSampler sampler(d.size(), 5, 0, 1, 4), resumed_sampler(d.size(), 5, 0, 1, 4);
  ViewPipeline pipeline(d, sampler, augmenter, torch::kCPU);
  std::vector<torch::Tensor> run;
  ASSERT_EQ(sampler.steps_per_epoch(), 2);
  for (int64_t epoch = 0; epoch < 3; ++epoch)
    for (int64_t step = 0; step < 2; ++step) run.push_back(pipeline.views(epoch, step));
  ViewPipeline resumed(d, resumed_sampler, augmenter, torch::kCPU);
  for (int64_t k = 3; k < static_cast<int64_t>(run.size()); ++k)  // from epoch 1's second step on
    EXPECT_TRUE(torch::equal(resumed.views(k / 2, k % 2), run[k])) << k;
}

TEST(ImageFolder, BadImagesAreErrorsNamingThemOrSkippedWhenAsked) {
  TempFolder root;
  write_folder(root.str(), 16);
  const std::string cut = encode(smooth_image(16, 16, 5), FileKind::Jpeg);
  write_bytes(root / "train/dog/img1.png", cut.substr(0, cut.size() / 2));  // a truncated JPEG named .png
  write_bytes(root / "train/eel/img0.png", "not an image at all");
  fs::create_symlink(root / "train/missing.jpg", root / "train/cat/img9.jpg");  // cannot be read
  const TwoViewAugmenter augmenter(AugmentOptions().output_size(16), 5);
  const torch::Tensor all = torch::arange(13, torch::kLong);
  {
    const Dataset d = load(root.str(), 16, 2);
    // Index order: cat/img0-3, cat/img9, dog/img0-3, eel/img0-3.
    EXPECT_ERROR(d.folder->decode_views(torch::tensor({6}, torch::kLong), 0, augmenter, false),
                 "train/dog/img1.png: corrupt");
    EXPECT_ERROR(d.folder->decode_views(torch::tensor({9}, torch::kLong), 0, augmenter, false),
                 "train/eel/img0.png: not a JPEG or PNG image");
    for (int64_t i : {0, 1, 2, 3, 5, 7, 8, 10, 11, 12})
      EXPECT_NO_THROW(d.folder->decode_views(torch::tensor({i}, torch::kLong), 0, augmenter, false)) << i;
    EXPECT_ERROR(d.folder->decode_centred(torch::tensor({4}, torch::kLong)), "train/cat/img9.jpg': No such file");
  }
  const Dataset skip = load(root.str(), 16, 2, /*skip=*/true);
  const torch::Tensor views = skip.folder->decode_views(all, 0, augmenter, false);
  EXPECT_EQ(views.size(0), 13);
  EXPECT_EQ(skip.folder->skipped_images(), 3);
  skip.folder->decode_centred(all);
  EXPECT_EQ(skip.folder->skipped_images(), 3);  // each file counted once
}

}  // namespace
}  // namespace hcl::data
