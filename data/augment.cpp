// Batched two-view augmentation: host-drawn per-image parameters packed into one tensor, then one
// batched pass of device-side tensor operations over every view of every image.
#include "data/augment.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "data/sampler.h"

namespace hcl::data {
namespace {

namespace F = torch::nn::functional;

// Uniform draws in [0, 1) from a counter-based stream keyed by one image's view.
class KeyedStream {
 public:
  explicit KeyedStream(uint64_t key) : key_(key) {}
  double uniform() { return static_cast<double>(mix64(key_ + counter_++) >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int64_t integer(int64_t n) { return std::min(n - 1, static_cast<int64_t>(uniform() * n)); }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

// torchvision's RandomResizedCrop.get_params: 10 tries, then a centred crop of a valid ratio.
void resized_crop_box(KeyedStream& rng, const AugmentOptions& o, int64_t height, int64_t width,
                      double* box) {
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(o.ratio_min()), log_hi = std::log(o.ratio_max());
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(o.scale_min(), o.scale_max());
    const double ratio = std::exp(rng.uniform(log_lo, log_hi));
    const auto w = static_cast<int64_t>(std::round(std::sqrt(target * ratio)));
    const auto h = static_cast<int64_t>(std::round(std::sqrt(target / ratio)));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      box[1] = static_cast<double>(rng.integer(height - h + 1));
      box[0] = static_cast<double>(rng.integer(width - w + 1));
      box[2] = static_cast<double>(w);
      box[3] = static_cast<double>(h);
      return;
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  double w = width, h = height;
  if (in_ratio < o.ratio_min()) {
    h = std::round(w / o.ratio_min());
  } else if (in_ratio > o.ratio_max()) {
    w = std::round(h * o.ratio_max());
  }
  box[0] = std::floor((width - w) / 2);
  box[1] = std::floor((height - h) / 2);
  box[2] = w;
  box[3] = h;
}

}  // namespace

void AugmentOptions::validate() const {
  HCL_REQUIRE(output_size() >= 1, "augmentation: output size must be >= 1, got ", output_size());
  HCL_REQUIRE(scale_min() > 0 && scale_min() <= scale_max() && scale_max() <= 1,
              "augmentation: crop scale must satisfy 0 < min <= max <= 1, got (", scale_min(), ", ",
              scale_max(), ")");
  HCL_REQUIRE(ratio_min() > 0 && ratio_min() <= ratio_max(),
              "augmentation: crop ratio must satisfy 0 < min <= max, got (", ratio_min(), ", ",
              ratio_max(), ")");
  for (double p : {flip_p(), jitter_p(), grayscale_p(), blur_p()})
    HCL_REQUIRE(p >= 0 && p <= 1, "augmentation: probabilities must be in [0, 1], got ", p);
  HCL_REQUIRE(brightness() >= 0 && contrast() >= 0 && saturation() >= 0 && brightness() <= 1 &&
                  contrast() <= 1 && saturation() <= 1,
              "augmentation: brightness, contrast and saturation must be in [0, 1]");
  HCL_REQUIRE(hue() >= 0 && hue() <= 0.5, "augmentation: hue must be in [0, 0.5], got ", hue());
  HCL_REQUIRE(blur_sigma_min() > 0 && blur_sigma_min() <= blur_sigma_max(),
              "augmentation: blur sigma must satisfy 0 < min <= max");
  HCL_REQUIRE(mean().size() == stddev().size(), "augmentation: mean and std differ in length");
  for (double s : stddev()) HCL_REQUIRE(s > 0, "augmentation: std must be > 0, got ", s);
}

std::pair<std::vector<double>, std::vector<double>> dataset_normalization(DatasetKind dataset,
                                                                          int64_t channels) {
  const DatasetInfo& info = dataset_info(dataset);
  std::vector<double> mean, stddev;
  // The table's channels; a synthetic set of another channel count repeats them (all 0.5).
  for (int64_t c = 0; c < channels; ++c) {
    mean.push_back(info.mean[static_cast<size_t>(c % info.channels)]);
    stddev.push_back(info.stddev[static_cast<size_t>(c % info.channels)]);
  }
  return {mean, stddev};
}

TwoViewAugmenter::TwoViewAugmenter(AugmentOptions options, uint64_t seed)
    : options_(std::move(options)), seed_(seed) {
  options_.validate();
}

// What the host draws for one view of one image.
struct TwoViewAugmenter::Draw {
  double crop[4];     // x0, y0, width, height in input pixels
  bool flip, jitter, gray;
  double factors[4];  // brightness, contrast, saturation, hue
  double sigma;       // 0: no blur
};

namespace {
// Columns of one packed (image, view) row.
constexpr int64_t kCrop = 0;         // 4: crop and flip as x -> a x + b, y -> c y + d in [-1, 1]
constexpr int64_t kBrightness = 4;   // brightness / 255 (1 / 255 without jitter): also uint8 -> [0, 1]
constexpr int64_t kContrast = 5;     // 1 without jitter
constexpr int64_t kSaturation = 6;   // 1 without jitter
constexpr int64_t kHue = 7;          // 3: n + 6 * hue for r, g, b (n = 5, 3, 1; hue 0 without jitter)
constexpr int64_t kGray = 10;        // 1 where the view turns grey
constexpr int64_t kTaps = 11;        // blur_taps(): the normalised blur kernel (a delta when unblurred)
// After the rows: the grey weights (3), the normalisation's 1 / std and -mean / std per channel,
// the output's pixel centres in [-1, 1] (S: grid_sample's coordinates with align_corners false).
constexpr double kGrayWeights[3] = {0.299, 0.587, 0.114};

// The HSV hue rotation of torchvision's adjust_hue on V x N x 3 x S x S in [0, 1]: the hue of each
// pixel (torchvision's formulas: 2c + (next - previous channel) / range, c the first largest
// channel, in sixths of a turn), shifted, and back through the closed form of HSV -> RGB
// (channel = max - range * clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6): the same function as
// torchvision's sector table with a third of the kernels. `hue` holds n + 6 * shift per channel.
torch::Tensor rotate_hue(const torch::Tensor& rgb, const torch::Tensor& hue) {
  torch::Tensor maxc, argmax;
  std::tie(maxc, argmax) = rgb.max(2, /*keepdim=*/true);  // first largest channel, as torchvision
  const torch::Tensor range = maxc - rgb.amin(2, true);
  const torch::Tensor next_minus_previous = torch::roll(rgb, -1, 2) - torch::roll(rgb, -2, 2);
  // Grey pixels (range 0) get any hue: range * t below is 0 for them.
  const torch::Tensor sixths =
      next_minus_previous.gather(2, argmax).div_(range.clamp_min(1e-12)).add_(argmax, 2);
  const torch::Tensor k = torch::remainder(sixths + hue, 6.0);
  const torch::Tensor t = torch::minimum(k, torch::rsub(k, 4.0)).clamp_(0, 1);
  return torch::addcmul(maxc, range, t, -1);
}

}  // namespace

uint64_t TwoViewAugmenter::epoch_key(int64_t epoch, int view) const {
  return mix64(seed_ ^ mix64(static_cast<uint64_t>(epoch) * 2 + view));
}

TwoViewAugmenter::Draw TwoViewAugmenter::draw(uint64_t key, int64_t index, int64_t height,
                                              int64_t width) const {
  const AugmentOptions& o = options_;
  Draw d{};
  KeyedStream rng(mix64(key ^ mix64(static_cast<uint64_t>(index))));
  resized_crop_box(rng, o, height, width, d.crop);
  // Fixed draw positions per decision, so one option does not shift the others' randomness.
  KeyedStream decisions(mix64(key ^ mix64(static_cast<uint64_t>(index) + 0x5bd1e995ULL)));
  d.flip = decisions.uniform() < o.flip_p();
  d.jitter = decisions.uniform() < o.jitter_p();
  d.factors[0] = decisions.uniform(1 - o.brightness(), 1 + o.brightness());
  d.factors[1] = decisions.uniform(1 - o.contrast(), 1 + o.contrast());
  d.factors[2] = decisions.uniform(1 - o.saturation(), 1 + o.saturation());
  d.factors[3] = decisions.uniform(-o.hue(), o.hue());
  d.gray = decisions.uniform() < o.grayscale_p();
  const bool blurred = decisions.uniform() < o.blur_p();
  const double s = decisions.uniform(o.blur_sigma_min(), o.blur_sigma_max());
  d.sigma = blurred ? s : 0.0;
  return d;
}

int64_t TwoViewAugmenter::blur_taps() const {
  // SimCLR's kernel: about a tenth of the image, odd.
  return options_.blur_p() > 0 ? std::max<int64_t>(3, (options_.output_size() / 10) | 1) : 0;
}

int64_t TwoViewAugmenter::packed_width() const { return kTaps + blur_taps(); }

int64_t TwoViewAugmenter::packed_constants(int64_t channels) const {
  return 3 + 2 * channels + options_.output_size();
}

void TwoViewAugmenter::pack(const Draw& d, int64_t height, int64_t width, float* row) const {
  const double h = static_cast<double>(height), w = static_cast<double>(width);
  // Output pixel (u, v) in [-1, 1] maps to the crop's box in input coordinates (mirrored if flipped):
  // affine_grid's theta without its zero entries.
  const double affine[4] = {(d.flip ? -1.0 : 1.0) * d.crop[2] / w, (2 * d.crop[0] + d.crop[2]) / w - 1,
                            d.crop[3] / h, (2 * d.crop[1] + d.crop[3]) / h - 1};
  for (int64_t k = 0; k < 4; ++k) row[kCrop + k] = static_cast<float>(affine[k]);
  row[kBrightness] = static_cast<float>((d.jitter ? d.factors[0] : 1.0) / 255.0);
  row[kContrast] = static_cast<float>(d.jitter ? d.factors[1] : 1.0);
  row[kSaturation] = static_cast<float>(d.jitter ? d.factors[2] : 1.0);
  const double hue6 = d.jitter ? 6.0 * d.factors[3] : 0.0;
  for (int64_t ch = 0; ch < 3; ++ch) row[kHue + ch] = static_cast<float>(5.0 - 2.0 * ch + hue6);
  row[kGray] = d.gray ? 1.0f : 0.0f;
  const int64_t taps = blur_taps();
  if (taps == 0) return;
  std::vector<double> kernel(taps);
  double sum = 0;
  for (int64_t k = 0; k < taps; ++k) {
    const double offset = static_cast<double>(k) - (taps - 1) / 2.0;
    kernel[k] = d.sigma > 0 ? std::exp(-offset * offset / (2 * d.sigma * d.sigma)) : (offset == 0 ? 1.0 : 0.0);
    sum += kernel[k];
  }
  for (int64_t k = 0; k < taps; ++k) row[kTaps + k] = static_cast<float>(kernel[k] / sum);
}

void TwoViewAugmenter::pack_constants(int64_t channels, float* out) const {
  std::vector<double> mean = options_.mean(), stddev = options_.stddev();
  if (mean.empty()) mean.assign(channels, 0.5), stddev.assign(channels, 0.5);
  HCL_REQUIRE(static_cast<int64_t>(mean.size()) == channels, "augmentation: normalisation has ",
              mean.size(), " channels, images have ", channels);
  for (int64_t k = 0; k < 3; ++k) out[k] = static_cast<float>(kGrayWeights[k]);
  for (int64_t ch = 0; ch < channels; ++ch) {
    out[3 + ch] = static_cast<float>(1.0 / stddev[ch]);
    out[3 + channels + ch] = static_cast<float>(-mean[ch] / stddev[ch]);
  }
  const int64_t s = options_.output_size();
  for (int64_t i = 0; i < s; ++i) out[3 + 2 * channels + i] = static_cast<float>((2.0 * i + 1) / s - 1);
}

AugmentParams TwoViewAugmenter::sample(const torch::Tensor& indices, int64_t epoch, int view,
                                       int64_t height, int64_t width) const {
  const int64_t n = indices.size(0);
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  AugmentParams p{torch::empty({n, 4}, f64), torch::empty({n}, torch::kBool),
                  torch::empty({n}, torch::kBool), torch::empty({n, 4}, f64),
                  torch::empty({n}, torch::kBool), torch::zeros({n}, f64)};
  auto* crop = p.crop.data_ptr<double>();
  auto* factors = p.factors.data_ptr<double>();
  auto* flip = p.flip.data_ptr<bool>();
  auto* jitter = p.jitter.data_ptr<bool>();
  auto* gray = p.gray.data_ptr<bool>();
  auto* sigma = p.blur_sigma.data_ptr<double>();
  const auto* index = idx.data_ptr<int64_t>();
  const uint64_t key = epoch_key(epoch, view);
  for (int64_t i = 0; i < n; ++i) {
    const Draw d = draw(key, index[i], height, width);
    std::copy(d.crop, d.crop + 4, crop + 4 * i);
    std::copy(d.factors, d.factors + 4, factors + 4 * i);
    flip[i] = d.flip;
    jitter[i] = d.jitter;
    gray[i] = d.gray;
    sigma[i] = d.sigma;
  }
  return p;
}

torch::Tensor TwoViewAugmenter::sample_views(const torch::Tensor& indices, int64_t epoch, int64_t channels,
                                             int64_t height, int64_t width, bool pin) const {
  HCL_REQUIRE(indices.dim() == 1, "augmentation: expected a 1-d tensor of indices, got ", indices.sizes());
  const int64_t n = indices.size(0), k = packed_width();
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor params = torch::empty({n * 2 * k + packed_constants(channels)},
                                      torch::TensorOptions().dtype(torch::kFloat).pinned_memory(pin));
  float* out = params.data_ptr<float>();
  const auto* index = idx.data_ptr<int64_t>();
  const uint64_t keys[2] = {epoch_key(epoch, 0), epoch_key(epoch, 1)};
  for (int64_t i = 0; i < n; ++i)
    for (int v = 0; v < 2; ++v) pack(draw(keys[v], index[i], height, width), height, width, out + (2 * i + v) * k);
  pack_constants(channels, out + n * 2 * k);
  return params;
}

CropBox TwoViewAugmenter::crop_box(int64_t index, int64_t epoch, int view, int64_t height, int64_t width) const {
  const Draw d = draw(epoch_key(epoch, view), index, height, width);
  return {d.crop[0], d.crop[1], d.crop[2], d.crop[3]};
}

torch::Tensor TwoViewAugmenter::sample_cropped_views(const torch::Tensor& indices, int64_t epoch, int64_t channels,
                                                     bool pin) const {
  HCL_REQUIRE(indices.dim() == 1, "augmentation: expected a 1-d tensor of indices, got ", indices.sizes());
  const int64_t n = indices.size(0), k = packed_width(), s = options_.output_size();
  const torch::Tensor idx = indices.to(torch::kCPU, torch::kLong).contiguous();
  torch::Tensor params = torch::empty({n * 2 * k + packed_constants(channels)},
                                      torch::TensorOptions().dtype(torch::kFloat).pinned_memory(pin));
  float* out = params.data_ptr<float>();
  const auto* index = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int v = 0; v < 2; ++v) {
      Draw d = draw(epoch_key(epoch, v), index[i], s, s);  // the decisions do not depend on the size
      const double half[4] = {0.0, static_cast<double>(v * s), static_cast<double>(s), static_cast<double>(s)};
      std::copy(half, half + 4, d.crop);
      pack(d, 2 * s, s, out + (2 * i + v) * k);
    }
  pack_constants(channels, out + n * 2 * k);
  return params;
}

torch::Tensor TwoViewAugmenter::apply(const torch::Tensor& images, const AugmentParams& p) const {
  HCL_ASSERT(images.dim() == 4, "augmentation: expected N x C x H x W images, got ", images.sizes());
  const int64_t n = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
  const int64_t k = packed_width();
  const torch::Tensor crop = p.crop.to(torch::kCPU, torch::kDouble).contiguous();
  const torch::Tensor factors = p.factors.to(torch::kCPU, torch::kDouble).contiguous();
  const torch::Tensor flip = p.flip.to(torch::kCPU, torch::kBool).contiguous();
  const torch::Tensor jitter = p.jitter.to(torch::kCPU, torch::kBool).contiguous();
  const torch::Tensor gray = p.gray.to(torch::kCPU, torch::kBool).contiguous();
  const torch::Tensor sigma = p.blur_sigma.to(torch::kCPU, torch::kDouble).contiguous();
  HCL_REQUIRE(crop.size(0) == n, "augmentation: parameters for ", crop.size(0), " images, got ", n);
  torch::Tensor params = torch::empty({n * k + packed_constants(c)}, torch::kFloat);
  float* out = params.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    Draw d{};
    std::copy(crop.data_ptr<double>() + 4 * i, crop.data_ptr<double>() + 4 * i + 4, d.crop);
    std::copy(factors.data_ptr<double>() + 4 * i, factors.data_ptr<double>() + 4 * i + 4, d.factors);
    d.flip = flip.data_ptr<bool>()[i];
    d.jitter = jitter.data_ptr<bool>()[i];
    d.gray = gray.data_ptr<bool>()[i];
    d.sigma = sigma.data_ptr<double>()[i];
    pack(d, h, w, out + i * k);
  }
  pack_constants(c, out + n * k);
  return run(images, params, 1, torch::MemoryFormat::Contiguous);
}

torch::Tensor TwoViewAugmenter::apply_views(const torch::Tensor& images, const torch::Tensor& params,
                                            torch::MemoryFormat format) const {
  return run(images, params, 2, format);
}

torch::Tensor TwoViewAugmenter::views(const torch::Tensor& images, const torch::Tensor& indices, int64_t epoch,
                                      torch::MemoryFormat format) const {
  HCL_REQUIRE(images.dim() == 4, "augmentation: expected N x C x H x W images, got ", images.sizes());
  return apply_views(images,
                     sample_views(indices, epoch, images.size(1), images.size(2), images.size(3), images.is_cuda()),
                     format);
}

torch::Tensor TwoViewAugmenter::view(const torch::Tensor& images, const torch::Tensor& indices,
                                     int64_t epoch, int view) const {
  return apply(images, sample(indices, epoch, view, images.size(2), images.size(3)));
}

// The batched pass: every op below covers all views of all images at once (V x N x C x S x S).
torch::Tensor TwoViewAugmenter::run(const torch::Tensor& images, const torch::Tensor& params, int64_t views,
                                    torch::MemoryFormat format) const {
  HCL_REQUIRE(images.dim() == 4 && images.scalar_type() == torch::kUInt8,
              "augmentation: expected uint8 N x C x H x W images, got ", images.scalar_type(), " ",
              images.sizes());
  const int64_t n = images.size(0), c = images.size(1), s = options_.output_size(), k = packed_width();
  const int64_t rows_size = n * views * k;
  HCL_REQUIRE(params.dim() == 1 && params.scalar_type() == torch::kFloat &&
                  params.numel() == rows_size + packed_constants(c),
              "augmentation: expected ", rows_size + packed_constants(c),
              " packed float parameters for ", n, " images of ", c, " channels, got ",
              params.scalar_type(), " ", params.sizes());
  // The one upload (non-blocking: pinned host memory does not stall the host).
  const torch::Tensor p = params.to(images.device(), /*non_blocking=*/true);
  const torch::Tensor rows = p.narrow(0, 0, rows_size).view({n, views, k});
  const torch::Tensor consts = p.narrow(0, rows_size, packed_constants(c));
  // Per-(view, image) columns, shaped V x N x width x 1 x 1 to broadcast over V x N x C x S x S.
  const torch::Tensor by_view = rows.permute({1, 0, 2}).unsqueeze(3).unsqueeze(4);
  auto column = [&](int64_t first, int64_t width) { return by_view.narrow(2, first, width); };

  // Crop + flip: the V grids of an image stacked along the height, one grid_sample for all. The
  // grid is built by broadcasting (affine_grid's bmm runs one matrix product per image on a CPU).
  const torch::Tensor affine = rows.narrow(2, kCrop, 4).view({n * views, 4, 1, 1});
  const torch::Tensor centres = consts.narrow(0, 3 + 2 * c, s);
  const torch::Tensor gx = torch::addcmul(affine.narrow(1, 1, 1), affine.narrow(1, 0, 1), centres.view({1, 1, s, 1}));
  const torch::Tensor gy = torch::addcmul(affine.narrow(1, 3, 1), affine.narrow(1, 2, 1), centres.view({1, s, 1, 1}));
  const torch::Tensor grid = torch::cat({gx.expand({n * views, s, s, 1}), gy.expand({n * views, s, s, 1})}, 3)
                                 .view({n, views * s, s, 2});
  torch::Tensor x = F::grid_sample(images.to(torch::kFloat), grid,
                                   F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
  x = x.view({n, c, views, s, s}).permute({2, 0, 1, 3, 4});  // V x N x C x S x S

  // Brightness (with the uint8 scale), contrast, saturation, hue: identity factors without jitter.
  x = (x * column(kBrightness, 1)).clamp_(0, 1);
  const torch::Tensor gray_weights = consts.narrow(0, 0, 3).view({1, 1, 3, 1, 1});
  auto gray = [&](const torch::Tensor& rgb) { return (rgb * gray_weights).sum(2, /*keepdim=*/true); };
  if (options_.jitter_p() > 0) {
    const torch::Tensor mean = c == 3 ? gray(x).mean({3, 4}, true) : x.mean({2, 3, 4}, true);
    x = torch::lerp(mean, x, column(kContrast, 1)).clamp_(0, 1);
    if (c == 3) {
      x = torch::lerp(gray(x), x, column(kSaturation, 1)).clamp_(0, 1);
      x = rotate_hue(x, column(kHue, 3));
    }
  }
  // Grayscale: weight 0 or 1 (lerp is exact at both ends).
  if (c == 3 && options_.grayscale_p() > 0) x = torch::lerp(x, gray(x), column(kGray, 1));

  const int64_t taps = blur_taps();
  if (taps > 0) {  // separable, per-(view, image) kernels, reflect padding
    const int64_t pad = (taps - 1) / 2, planes = views * n * c;
    HCL_REQUIRE(s > pad, "augmentation: images of ", s, " pixels are too small to blur");
    const torch::Tensor kernels = column(kTaps, taps).squeeze(4).squeeze(3).unsqueeze(2)
                                      .expand({views, n, c, taps}).reshape({planes, 1, taps, 1});
    torch::Tensor y = x.reshape({1, planes, s, s});
    y = F::pad(y, F::PadFuncOptions({0, 0, pad, pad}).mode(torch::kReflect));
    y = F::conv2d(y, kernels, F::Conv2dFuncOptions().groups(planes));
    y = F::pad(y, F::PadFuncOptions({pad, pad, 0, 0}).mode(torch::kReflect));
    y = F::conv2d(y, kernels.view({planes, 1, 1, taps}), F::Conv2dFuncOptions().groups(planes));
    x = y.view({views, n, c, s, s});
  }

  // Normalisation, written straight into the output's memory format.
  torch::Tensor out = torch::empty({views * n, c, s, s}, x.options().memory_format(format));
  torch::Tensor out_by_view = out.view({views, n, c, s, s});
  torch::addcmul_out(out_by_view, consts.narrow(0, 3 + c, c).view({1, 1, c, 1, 1}), x,
                     consts.narrow(0, 3, c).view({1, 1, c, 1, 1}));
  return out;
}

torch::Tensor TwoViewAugmenter::evaluation(const torch::Tensor& images) const {
  torch::Tensor x = images.to(torch::kFloat).div_(255.0);
  const int64_t s = options_.output_size();
  if (x.size(2) != s || x.size(3) != s)
    x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{s, s}).mode(torch::kBilinear).align_corners(false));
  return normalize(x);
}

torch::Tensor TwoViewAugmenter::normalize(torch::Tensor x) const {
  const int64_t c = x.size(1);
  std::vector<double> mean = options_.mean(), stddev = options_.stddev();
  if (mean.empty()) mean.assign(c, 0.5), stddev.assign(c, 0.5);
  HCL_REQUIRE(static_cast<int64_t>(mean.size()) == c, "augmentation: normalisation has ",
              mean.size(), " channels, images have ", c);
  const auto opts = x.options();
  const torch::Tensor m = torch::tensor(mean, torch::kDouble).to(opts).view({1, c, 1, 1});
  const torch::Tensor sd = torch::tensor(stddev, torch::kDouble).to(opts).view({1, c, 1, 1});
  return (x - m) / sd;
}

}  // namespace hcl::data
