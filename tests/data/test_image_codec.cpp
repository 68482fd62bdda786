// data/image_codec.h: every kind of file decodes to the RGB it was made from (JPEG within its loss,
// PNG exactly), scaled JPEG decoding, the crop-resize against LibTorch's bilinear resampling and a
// flat image, and a clear error for each bad file.
#include <gtest/gtest.h>
#include <zlib.h>

#include "core/check.h"
#include "data/image_codec.h"
#include "tests/support/errors.h"
#include "tests/support/image_files.h"

namespace hcl::data {
namespace {

using hcl::testing::encode;
using hcl::testing::FileKind;
using hcl::testing::smooth_image;

torch::Tensor as_chw(const RgbImage& image) {
  return torch::from_blob(const_cast<uint8_t*>(image.pixels.data()), {image.height, image.width, 3}, torch::kUInt8)
      .permute({2, 0, 1})
      .clone();
}

double mean_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat) - b.to(torch::kFloat)).abs().mean().item<double>();
}

TEST(ImageCodec, EveryKindDecodesToItsRgb) {
  const torch::Tensor image = smooth_image(40, 56, 1);
  const torch::Tensor grey = image.narrow(0, 0, 1).expand({3, 40, 56});
  struct Case {
    FileKind kind;
    torch::Tensor expected;
    double tolerance;  // mean absolute difference, in levels
  };
  for (const Case& c : {Case{FileKind::Png, image, 0.0}, Case{FileKind::GreyPng, grey, 0.0},
                        Case{FileKind::Jpeg, image, 2.0}, Case{FileKind::GreyJpeg, grey, 2.0},
                        Case{FileKind::CmykJpeg, image, 3.0}}) {
    const std::string bytes = encode(image, c.kind);
    EXPECT_EQ(sniff_format(bytes), c.kind == FileKind::Png || c.kind == FileKind::GreyPng ? ImageFormat::Png
                                                                                          : ImageFormat::Jpeg);
    const ImageSize size = read_image_size(bytes, "x");
    EXPECT_EQ(size.height, 40);
    EXPECT_EQ(size.width, 56);
    const RgbImage decoded = decode_image(bytes, "x");
    ASSERT_EQ(decoded.pixels.size(), 40u * 56u * 3u);
    EXPECT_LE(mean_abs_diff(as_chw(decoded), c.expected), c.tolerance) << static_cast<int>(c.kind);
    if (c.tolerance == 0) {
      EXPECT_TRUE(torch::equal(as_chw(decoded), c.expected));
    }
  }
}

TEST(ImageCodec, JpegDecodesAtTheSmallestScaleAllowed) {
  const std::string bytes = encode(smooth_image(64, 96, 2), FileKind::Jpeg);
  EXPECT_EQ(decode_image(bytes, "x", 1.0).width, 96);
  const RgbImage half = decode_image(bytes, "x", 0.5);
  EXPECT_EQ(half.width, 48);
  EXPECT_EQ(half.height, 32);
  EXPECT_EQ(decode_image(bytes, "x", 0.3).width, 36);  // 3/8 is the smallest k/8 >= 0.3
  EXPECT_EQ(decode_image(bytes, "x", 0.01).width, 12);
  // A PNG has no scaled decoding: full size whatever is allowed.
  EXPECT_EQ(decode_image(encode(smooth_image(64, 96, 2), FileKind::Png), "x", 0.5).width, 96);
}

TEST(ImageCodec, CropResizeMatchesBilinearWhenEnlargingAndIsExactAtScaleOne) {
  const torch::Tensor image = smooth_image(20, 30, 3);
  const RgbImage rgb = decode_image(encode(image, FileKind::Png), "x");
  // The whole image at its own size: a copy.
  torch::Tensor out = torch::empty({3, 20, 20}, torch::kUInt8);
  crop_resize(rgb, {5, 0, 20, 20}, 20, out.data_ptr<uint8_t>(), 20 * 20);
  EXPECT_TRUE(torch::equal(out, image.narrow(2, 5, 20)));
  // A 10 x 10 box enlarged to 25: bilinear with align_corners = false (as grid_sample).
  out = torch::empty({3, 25, 25}, torch::kUInt8);
  crop_resize(rgb, {4, 6, 10, 10}, 25, out.data_ptr<uint8_t>(), 25 * 25);
  const torch::Tensor reference = torch::nn::functional::interpolate(
      image.narrow(1, 6, 10).narrow(2, 4, 10).unsqueeze(0).to(torch::kFloat),
      torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{25, 25}).mode(torch::kBilinear).align_corners(false));
  // Inside the box the two agree to rounding; at its edge hcl reads the pixels beyond the box that
  // the image has (LibTorch's resize of the cut-out copy clamps to it), so compare the interior.
  const auto inner = [](const torch::Tensor& t) { return t.narrow(-1, 2, 21).narrow(-2, 2, 21); };
  EXPECT_LE((inner(out.to(torch::kFloat)) - inner(reference.squeeze(0))).abs().max().item<double>(), 1.0);
}

TEST(ImageCodec, CropResizeOfAFlatImageIsFlatAtAnyReduction) {
  const torch::Tensor flat = torch::full({3, 300, 200}, 77, torch::kUInt8);
  const RgbImage rgb = decode_image(encode(flat, FileKind::Png), "x");
  torch::Tensor out = torch::empty({3, 16, 16}, torch::kUInt8);
  crop_resize(rgb, {10.5, 3.25, 180, 290}, 16, out.data_ptr<uint8_t>(), 16 * 16);  // ~ 11x to 18x smaller
  EXPECT_EQ(out.min().item<int>(), 77);
  EXPECT_EQ(out.max().item<int>(), 77);
}

// `png` with the size its header claims changed to height x width (IHDR's CRC made right again),
// as a "decompression bomb" of a few bytes that claims 100000 x 100000 pixels.
std::string claim_size(std::string png, uint32_t height, uint32_t width) {
  const auto put = [&](size_t at, uint32_t v) {
    for (int b = 0; b < 4; ++b) png[at + b] = static_cast<char>((v >> (24 - 8 * b)) & 0xff);
  };
  put(16, width);  // after the signature (8), IHDR's length (4) and type (4)
  put(20, height);
  const auto* ihdr = reinterpret_cast<const Bytef*>(png.data() + 12);  // type + 13 bytes of data
  put(29, static_cast<uint32_t>(crc32(0, ihdr, 17)));
  return png;
}

TEST(ImageCodec, ImagesBeyondThePixelLimitAreRefusedFromTheHeader) {
  const std::string png = encode(smooth_image(30, 40, 5), FileKind::Png);
  // Refused before anything is allocated (a 30 GB buffer otherwise): the header is all it reads.
  const std::string bomb = claim_size(png, 100000, 100000);
  EXPECT_EQ(read_image_size(bomb, "x").height, 100000);
  EXPECT_ERROR(decode_image(bomb, "/d/bomb.png"),
               "/d/bomb.png: 100000x100000 pixels (a PNG decodes whole) exceed the limit of 89478485 "
               "(--max-image-pixels; 0: no limit)");
  // A real PNG: the limit is on its pixels; at or under it, it decodes as before.
  EXPECT_ERROR(decode_image(png, "/d/a.png", 1.0, 1199), "40x30 pixels (a PNG decodes whole) exceed the limit of 1199");
  EXPECT_EQ(decode_image(png, "/d/a.png", 1.0, 1200).width, 40);
  // A JPEG is decoded at a smaller DCT scale until it fits (96 x 64: 1/2 fits 1536, 1/8 fits 96),
  // and refused only when even 1/8 does not.
  const std::string jpeg = encode(smooth_image(64, 96, 2), FileKind::Jpeg);
  EXPECT_EQ(decode_image(jpeg, "x", 1.0, 1536).width, 48);
  EXPECT_EQ(decode_image(jpeg, "x", 1.0, 1535).width, 36);
  EXPECT_EQ(decode_image(jpeg, "x", 1.0, 96).width, 12);
  EXPECT_ERROR(decode_image(jpeg, "/d/b.jpg", 1.0, 95), "/d/b.jpg: 96x64 pixels (even decoded at 1/8 scale) exceed");
}

TEST(ImageCodec, BadBytesAreErrorsNamingTheFile) {
  const std::string jpeg = encode(smooth_image(32, 32, 4), FileKind::Jpeg);
  const std::string png = encode(smooth_image(32, 32, 4), FileKind::Png);
  EXPECT_ERROR(decode_image("hello, world", "/d/notes.jpg"), "/d/notes.jpg: not a JPEG or PNG");
  EXPECT_ERROR(decode_image("", "/d/empty.png"), "/d/empty.png: not a JPEG or PNG");
  EXPECT_ERROR(decode_image(jpeg.substr(0, jpeg.size() - 100), "/d/cut.jpg"), "/d/cut.jpg: corrupt or truncated JPEG");
  EXPECT_ERROR(decode_image(jpeg.substr(0, 40), "/d/head.jpg"), "/d/head.jpg: corrupt");
  EXPECT_ERROR(decode_image(png.substr(0, png.size() - 30), "/d/cut.png"), "/d/cut.png: corrupt");
  std::string garbled = png;
  for (size_t i = 40; i < garbled.size() - 20; ++i) garbled[i] = static_cast<char>(garbled[i] ^ 0x5a);
  EXPECT_ERROR(decode_image(garbled, "/d/garbled.png"), "/d/garbled.png: corrupt");
}

}  // namespace
}  // namespace hcl::data
