// JPEG and PNG decoding into RGB, scaled JPEG decoding, the antialiased crop-resize, and encoders.
#include "data/image_codec.h"

#include <png.h>
#include <turbojpeg.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "core/check.h"

namespace hcl::data {

namespace {

// One TurboJPEG instance per thread and direction (instances are not shareable between threads).
struct TjHandle {
  tjhandle handle;
  explicit TjHandle(bool compress) : handle(compress ? tjInitCompress() : tjInitDecompress()) {
    HCL_REQUIRE(handle != nullptr, "libjpeg-turbo: cannot create an instance: ", tjGetErrorStr2(nullptr));
  }
  ~TjHandle() { tjDestroy(handle); }
  TjHandle(const TjHandle&) = delete;
  TjHandle& operator=(const TjHandle&) = delete;
};

// This thread's decompressor. After a failed call an instance can report a wrong size for the next
// image (libjpeg-turbo 2.1), so a failure replaces it: fail_jpeg below.
std::unique_ptr<TjHandle>& decompressor_slot() {
  thread_local std::unique_ptr<TjHandle> h;
  if (!h) h = std::make_unique<TjHandle>(false);
  return h;
}

tjhandle decompressor() { return decompressor_slot()->handle; }

[[noreturn]] void fail_jpeg(const std::string& what) {
  const std::string reason = tjGetErrorStr2(decompressor());
  decompressor_slot() = std::make_unique<TjHandle>(false);
  throw Error(what + " (" + reason + ")");
}

const auto* as_bytes(const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); }

void require_image(const std::string& bytes, const std::string& path) {
  if (sniff_format(bytes) == ImageFormat::Unknown)
    throw Error(detail::concat(path, ": not a JPEG or PNG image (", bytes.size(), " bytes; first bytes are not ",
                               "either format's signature)"));
}

struct JpegHeader {
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
};

JpegHeader jpeg_header(const std::string& bytes, const std::string& path) {
  JpegHeader h;
  if (tjDecompressHeader3(decompressor(), as_bytes(bytes), bytes.size(), &h.width, &h.height, &h.subsampling,
                          &h.colorspace) != 0)
    fail_jpeg(path + ": corrupt JPEG header");
  return h;
}

// Throws unless a decode of `height` x `width` pixels fits in `max_pixels` (0: no limit).
void require_pixels(int64_t height, int64_t width, int64_t max_pixels, const std::string& path, const char* how) {
  if (max_pixels <= 0 || height * width <= max_pixels) return;
  throw Error(detail::concat(path, ": ", width, "x", height, " pixels ", how, " exceed the limit of ", max_pixels,
                             " (--max-image-pixels; 0: no limit)"));
}

// The scale to decode `h` at, among libjpeg-turbo's factors num / denom <= 1: the smallest that
// keeps at least `min_scale` of each side, unless its decode exceeds `max_pixels` (0: no limit);
// then the largest whose decode fits. Throws when none fits.
tjscalingfactor jpeg_scale(const JpegHeader& h, double min_scale, int64_t max_pixels, const std::string& path) {
  const auto fits = [&](const tjscalingfactor& s) {
    return max_pixels <= 0 ||
           static_cast<int64_t>(TJSCALED(h.width, s)) * static_cast<int64_t>(TJSCALED(h.height, s)) <= max_pixels;
  };
  const auto value = [](const tjscalingfactor& s) { return static_cast<double>(s.num) / s.denom; };
  int count = 0;
  const tjscalingfactor* factors = tjGetScalingFactors(&count);
  tjscalingfactor wanted{1, 1}, largest_fitting{0, 1};
  for (int i = 0; i < count; ++i) {
    const double f = value(factors[i]);
    if (f > 1.0) continue;
    if (f >= min_scale && f < value(wanted)) wanted = factors[i];
    if (fits(factors[i]) && f > value(largest_fitting)) largest_fitting = factors[i];
  }
  if (fits(wanted)) return wanted;
  if (largest_fitting.num == 0) require_pixels(h.height, h.width, max_pixels, path, "(even decoded at 1/8 scale)");
  return largest_fitting;
}

RgbImage decode_jpeg(const std::string& bytes, const std::string& path, double min_scale, int64_t max_pixels) {
  const JpegHeader h = jpeg_header(bytes, path);
  const tjscalingfactor f = jpeg_scale(h, min_scale, max_pixels, path);
  RgbImage out;
  out.width = TJSCALED(h.width, f);
  out.height = TJSCALED(h.height, f);
  const bool cmyk = h.colorspace == TJCS_CMYK || h.colorspace == TJCS_YCCK;
  std::vector<uint8_t> buffer(static_cast<size_t>(out.width * out.height * (cmyk ? 4 : 3)));
  if (tjDecompress2(decompressor(), as_bytes(bytes), bytes.size(), buffer.data(), static_cast<int>(out.width), 0,
                    static_cast<int>(out.height), cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_STOPONWARNING) != 0)
    fail_jpeg(path + ": corrupt or truncated JPEG");
  if (!cmyk) {
    out.pixels = std::move(buffer);
    return out;
  }
  // Adobe's inverted CMYK, as JPEG files store it: 255 is no ink, so R = C * K / 255.
  out.pixels.resize(static_cast<size_t>(out.width * out.height * 3));
  for (size_t p = 0, n = out.pixels.size() / 3; p < n; ++p) {
    const unsigned k = buffer[4 * p + 3];
    for (int c = 0; c < 3; ++c) out.pixels[3 * p + c] = static_cast<uint8_t>((buffer[4 * p + c] * k + 127) / 255);
  }
  return out;
}

// libpng's simplified API; its errors end up in image.message.
struct PngImage {
  png_image image{};
  PngImage() { image.version = PNG_IMAGE_VERSION; }
  ~PngImage() { png_image_free(&image); }
};

RgbImage decode_png(const std::string& bytes, const std::string& path, int64_t max_pixels) {
  PngImage png;
  if (png_image_begin_read_from_memory(&png.image, bytes.data(), bytes.size()) == 0)
    throw Error(detail::concat(path, ": corrupt PNG (", png.image.message, ")"));
  png.image.format = PNG_FORMAT_RGB;  // grey, palette and 16-bit converted; alpha composited on black
  RgbImage out;
  out.width = png.image.width;
  out.height = png.image.height;
  require_pixels(out.height, out.width, max_pixels, path, "(a PNG decodes whole)");
  // In 64 bits: PNG_IMAGE_SIZE is 32-bit arithmetic and wraps for large images.
  out.pixels.resize(static_cast<size_t>(out.height) * static_cast<size_t>(out.width) * 3);
  if (png_image_finish_read(&png.image, nullptr, out.pixels.data(), 0, nullptr) == 0)
    throw Error(detail::concat(path, ": corrupt or truncated PNG (", png.image.message, ")"));
  return out;
}

// Separable resampling weights: output i of `size` covers [start, start + extent) of the input
// axis of length `length`; a triangle filter with support max(1, scale) input pixels per side.
struct AxisWeights {
  std::vector<int64_t> first;   // first input index of output i
  std::vector<int64_t> count;   // taps of output i
  std::vector<float> weights;   // size * taps_max, normalised per output
  int64_t taps_max = 0;
};

AxisWeights axis_weights(double start, double extent, int64_t size, int64_t length) {
  const double scale = extent / static_cast<double>(size);
  const double support = std::max(1.0, scale);
  AxisWeights a;
  a.taps_max = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  a.first.resize(size);
  a.count.resize(size);
  a.weights.assign(static_cast<size_t>(size * a.taps_max), 0.0f);
  for (int64_t i = 0; i < size; ++i) {
    // Input coordinate of output pixel i's centre; input pixel j's centre is at j + 0.5.
    const double centre = start + (static_cast<double>(i) + 0.5) * scale;
    int64_t lo = static_cast<int64_t>(std::floor(centre - support));
    int64_t hi = static_cast<int64_t>(std::ceil(centre + support));
    lo = std::clamp<int64_t>(lo, 0, length - 1);
    hi = std::clamp<int64_t>(hi, lo + 1, length);
    hi = std::min(hi, lo + a.taps_max);
    double total = 0;
    float* w = &a.weights[static_cast<size_t>(i * a.taps_max)];
    for (int64_t j = lo; j < hi; ++j) {
      const double d = std::abs((static_cast<double>(j) + 0.5 - centre) / support);
      w[j - lo] = static_cast<float>(std::max(0.0, 1.0 - d));
      total += w[j - lo];
    }
    if (total <= 0) {  // the box lies outside the image (border padding): nearest pixel
      const int64_t j = std::clamp<int64_t>(static_cast<int64_t>(centre), 0, length - 1);
      lo = j, hi = j + 1, w[0] = 1.0f, total = 1.0;
    }
    for (int64_t j = 0; j < hi - lo; ++j) w[j] = static_cast<float>(w[j] / total);
    a.first[i] = lo;
    a.count[i] = hi - lo;
  }
  return a;
}

}  // namespace

ImageFormat sniff_format(const std::string& bytes) {
  static const unsigned char kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (bytes.size() >= 3 && static_cast<unsigned char>(bytes[0]) == 0xff && static_cast<unsigned char>(bytes[1]) == 0xd8 &&
      static_cast<unsigned char>(bytes[2]) == 0xff)
    return ImageFormat::Jpeg;
  if (bytes.size() >= 8 && std::memcmp(bytes.data(), kPng, 8) == 0) return ImageFormat::Png;
  return ImageFormat::Unknown;
}

ImageSize read_image_size(const std::string& bytes, const std::string& path) {
  require_image(bytes, path);
  if (sniff_format(bytes) == ImageFormat::Jpeg) {
    const JpegHeader h = jpeg_header(bytes, path);
    return {h.height, h.width};
  }
  PngImage png;
  if (png_image_begin_read_from_memory(&png.image, bytes.data(), bytes.size()) == 0)
    throw Error(detail::concat(path, ": corrupt PNG (", png.image.message, ")"));
  return {png.image.height, png.image.width};
}

RgbImage decode_image(const std::string& bytes, const std::string& path, double min_scale, int64_t max_pixels) {
  require_image(bytes, path);
  RgbImage image = sniff_format(bytes) == ImageFormat::Jpeg ? decode_jpeg(bytes, path, min_scale, max_pixels)
                                                            : decode_png(bytes, path, max_pixels);
  HCL_REQUIRE(image.height > 0 && image.width > 0, path, ": empty image (", image.height, "x", image.width, ")");
  return image;
}

void crop_resize(const RgbImage& image, const CropBox& box, int64_t size, uint8_t* out, int64_t plane_stride) {
  HCL_ASSERT(size > 0 && box.width > 0 && box.height > 0, "crop_resize: empty box or size");
  const AxisWeights wx = axis_weights(box.x0, box.width, size, image.width);
  const AxisWeights wy = axis_weights(box.y0, box.height, size, image.height);
  // Rows first: each input row the vertical pass needs, resampled to `size` columns (interleaved).
  const int64_t row_lo = wy.first.front(), row_hi = wy.first.back() + wy.count.back();
  std::vector<float> rows(static_cast<size_t>((row_hi - row_lo) * size * 3));
  for (int64_t y = row_lo; y < row_hi; ++y) {
    const uint8_t* src = image.pixels.data() + y * image.width * 3;
    float* dst = rows.data() + (y - row_lo) * size * 3;
    for (int64_t i = 0; i < size; ++i) {
      const float* w = &wx.weights[static_cast<size_t>(i * wx.taps_max)];
      float r = 0, g = 0, b = 0;
      for (int64_t t = 0; t < wx.count[i]; ++t) {
        const uint8_t* p = src + (wx.first[i] + t) * 3;
        r += w[t] * p[0], g += w[t] * p[1], b += w[t] * p[2];
      }
      dst[3 * i] = r, dst[3 * i + 1] = g, dst[3 * i + 2] = b;
    }
  }
  for (int64_t j = 0; j < size; ++j) {
    const float* w = &wy.weights[static_cast<size_t>(j * wy.taps_max)];
    for (int64_t i = 0; i < size; ++i) {
      float acc[3] = {0, 0, 0};
      for (int64_t t = 0; t < wy.count[j]; ++t) {
        const float* p = rows.data() + ((wy.first[j] + t - row_lo) * size + i) * 3;
        acc[0] += w[t] * p[0], acc[1] += w[t] * p[1], acc[2] += w[t] * p[2];
      }
      for (int c = 0; c < 3; ++c)
        out[c * plane_stride + j * size + i] = static_cast<uint8_t>(std::clamp(std::lround(acc[c]), 0L, 255L));
    }
  }
}

std::string encode_jpeg(const uint8_t* pixels, int64_t height, int64_t width, int channels, int quality) {
  HCL_REQUIRE(channels == 1 || channels == 3 || channels == 4, "encode_jpeg: channels must be 1, 3 or 4 (CMYK)");
  thread_local TjHandle h(true);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  const int format = channels == 1 ? TJPF_GRAY : channels == 3 ? TJPF_RGB : TJPF_CMYK;
  const int subsampling = channels == 1 ? TJSAMP_GRAY : TJSAMP_420;
  const int rc = tjCompress2(h.handle, pixels, static_cast<int>(width), 0, static_cast<int>(height), format, &buffer,
                             &size, subsampling, quality, 0);
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> owned(buffer, tjFree);
  HCL_REQUIRE(rc == 0, "encode_jpeg: ", tjGetErrorStr2(h.handle));
  return std::string(reinterpret_cast<const char*>(buffer), size);
}

std::string encode_png(const uint8_t* pixels, int64_t height, int64_t width, int channels) {
  HCL_REQUIRE(channels == 1 || channels == 3, "encode_png: channels must be 1 or 3");
  PngImage png;
  png.image.width = static_cast<png_uint_32>(width);
  png.image.height = static_cast<png_uint_32>(height);
  png.image.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  HCL_REQUIRE(png_image_write_to_memory(&png.image, nullptr, &size, 0, pixels, 0, nullptr) != 0,
              "encode_png: ", png.image.message);
  std::string out(size, '\0');
  HCL_REQUIRE(png_image_write_to_memory(&png.image, out.data(), &size, 0, pixels, 0, nullptr) != 0,
              "encode_png: ", png.image.message);
  out.resize(size);
  return out;
}

}  // namespace hcl::data
