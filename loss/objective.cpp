// The log-space objective. One pass over column chunks gives, for every anchor, the log-sum-exp of
// c * s_ij over its negatives for each coefficient c the estimator needs ((1+beta, beta) for hard, 1
// for easy); a custom autograd function recomputes the chunks in backward, so memory stays at
// A x chunk (and anchors are tiled within a chunk, so the elementwise work runs in cache). The
// per-anchor algebra after that pass runs on length-A vectors with plain autograd.
#include "loss/objective.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "core/check.h"
#include "core/torch_compat.h"

namespace hcl::loss {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The columns the anchors skip, as diagonal segments of the anchors x candidates scores: anchors
// [row, row + length) skip the columns [row + shift, row + shift + length). Three at most: every
// anchor's own column, the positives of view-0 anchors (B columns on), those of view-1 anchors (B
// columns back), in that order (the positives' in anchor order). Host integers only: nothing is
// built or read on the device.
struct Segment {
  int64_t row, length, shift;
};

std::vector<Segment> excluded_segments(const ViewLayout& layout, int64_t anchors) {
  const int64_t b = layout.batch, lo = layout.first, hi = layout.first + anchors;
  const int64_t base = layout.offset + layout.first;  // the column of anchor 0's own view
  std::vector<Segment> segments{{0, anchors, base}};
  if (const int64_t end = std::min(hi, b); lo < end) segments.push_back({0, end - lo, base + b});
  if (const int64_t start = std::max(lo, b); start < hi) segments.push_back({start - lo, hi - start, base - b});
  return segments;
}

// Scores anchors[i0, i0+r) x candidates[j0, j0+n) / t, with the skipped columns at -inf (one fill
// of a diagonal view per segment that crosses the tile).
torch::Tensor masked_scores(const torch::Tensor& anchors, const torch::Tensor& candidates,
                            const std::vector<Segment>& excluded, int64_t i0, int64_t r, int64_t j0, int64_t n,
                            double inv_temperature) {
  torch::Tensor scores = anchors.narrow(0, i0, r).mm(candidates.narrow(0, j0, n).t()).mul_(inv_temperature);
  for (const Segment& s : excluded) {
    const int64_t a0 = std::max({s.row, i0, j0 - s.shift});
    const int64_t a1 = std::min({s.row + s.length, i0 + r, j0 + n - s.shift});
    if (a0 < a1) scores.narrow(0, a0 - i0, a1 - a0).narrow(1, a0 + s.shift - j0, a1 - a0).diagonal().fill_(-kInf);
  }
  return scores;
}

// Indices of `values` in ascending order of value.
std::vector<int64_t> ascending(const std::vector<double>& values) {
  std::vector<int64_t> order(values.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values[a] < values[b]; });
  return order;
}

// Rows per tile of a chunk of n columns: small enough that a tile's scores stay in cache on the
// CPU (4M elements), large enough to keep a GPU busy (64M). Rows are independent, so tiling them
// changes nothing but speed and memory.
int64_t rows_per_tile(int64_t n, const torch::Device& device) {
  const int64_t budget = device.is_cuda() ? (int64_t{1} << 26) : (int64_t{1} << 22);
  return std::max<int64_t>(1, budget / std::max<int64_t>(1, n));
}

// Adds the columns of `candidates` into the per-anchor sums: lse (K x A) gets, per coefficient c_k,
// log sum_j exp(c_k s_ij) over the non-excluded columns; log_sq (A, or undefined) that of
// exp(2 c_w s_ij) for w = weight_index. Coefficients 0 are skipped (they only count columns).
// lse and log_sq are float64 accumulators whatever the embeddings' dtype: a chunk's sum is
// log(sum of exponentials) (at most log n, computed in the embeddings' dtype) plus c times its shift
// (up to c / t, rounded once per chunk in float32), so adding them up in float32 would add one
// rounding of a large value per chunk; in float64 the result does not depend on the chunk size.
void accumulate_sums(const torch::Tensor& anchors, const torch::Tensor& candidates,
                     const std::vector<Segment>& excluded, const std::vector<double>& coefficients,
                     double inv_temperature, int64_t chunk, int64_t weight_index, torch::Tensor& lse,
                     torch::Tensor& log_sq) {
  const int64_t rows = anchors.size(0), columns = candidates.size(0);
  // Smallest coefficient first, so that exp(2c D) can be the square of exp(c D) (beta = 1). The
  // last coefficient whose exponential is taken of D itself overwrites D: one tile fewer alive.
  const std::vector<int64_t> order = ascending(coefficients);
  int64_t overwrites_scores = -1;
  for (size_t i = 0; i < order.size(); ++i) {
    const double c = coefficients[order[i]];
    const bool from_half =
        std::any_of(order.begin(), order.begin() + static_cast<int64_t>(i),
                    [&](int64_t k) { return coefficients[k] != 0.0 && coefficients[k] == c / 2; });
    if (c != 0.0 && !from_half) overwrites_scores = order[i];
  }
  for (int64_t j0 = 0; j0 < columns; j0 += chunk) {
    const int64_t n = std::min(chunk, columns - j0);
    const int64_t tile = rows_per_tile(n, anchors.device());
    for (int64_t i0 = 0; i0 < rows; i0 += tile) {
      const int64_t r = std::min(tile, rows - i0);
      torch::Tensor d = masked_scores(anchors, candidates, excluded, i0, r, j0, n, inv_temperature);
      // Shift by the row maximum over the chunk's negatives (0 where the chunk has none).
      torch::Tensor shift = std::get<0>(d.max(1, true));
      shift.masked_fill_(shift.isinf(), 0.0);
      d.sub_(shift);
      const torch::Tensor wide_shift = shift.squeeze(1).to(torch::kDouble);
      std::map<double, torch::Tensor> exps;
      for (int64_t k : order) {
        const double c = coefficients[k];
        if (c == 0.0) continue;  // filled by count_constant_sums
        const auto half = exps.find(c / 2);
        const bool last_use = k == overwrites_scores;
        const torch::Tensor e = half != exps.end() ? half->second.square()
                                : c == 1.0         ? (last_use ? d.exp_() : d.exp())
                                                   : (last_use ? d.mul_(c) : d.mul(c)).exp_();
        exps.emplace(c, e);
        const torch::Tensor chunk_lse = e.sum(1).log_().to(torch::kDouble).add_(wide_shift, c);
        if (k == weight_index) {
          torch::Tensor sq = log_sq.narrow(0, i0, r);
          sq.copy_(torch::logaddexp(sq, e.square().sum(1).log_().to(torch::kDouble).add_(wide_shift, 2 * c)));
        }
        torch::Tensor target = lse[k].narrow(0, i0, r);
        target.copy_(torch::logaddexp(target, chunk_lse));
      }
    }
  }
}

// For c = 0 the sum counts the negatives: log N for every anchor.
void count_constant_sums(const std::vector<double>& coefficients, int64_t negatives, torch::Tensor& lse) {
  for (size_t k = 0; k < coefficients.size(); ++k)
    if (coefficients[k] == 0.0) lse[static_cast<int64_t>(k)].fill_(std::log(static_cast<double>(negatives)));
}

// Backward of accumulate_sums for the final lse: d/ds_ij of sum_k g_ik lse_ik = sum_k g_ik c_k
// softmax_k(i, j); then s = a . b / t. Adds into grad_anchors and grad_candidates.
void accumulate_sum_gradients(const torch::Tensor& anchors, const torch::Tensor& candidates,
                              const std::vector<Segment>& excluded, const std::vector<double>& coefficients,
                              double inv_temperature, int64_t chunk, const torch::Tensor& lse,
                              const torch::Tensor& grad_lse, torch::Tensor& grad_anchors,
                              torch::Tensor& grad_candidates) {
  const int64_t rows = anchors.size(0), columns = candidates.size(0);
  const bool paired = coefficients.size() == 2 && coefficients[1] > 0 && coefficients[0] == 2 * coefficients[1];
  for (int64_t j0 = 0; j0 < columns; j0 += chunk) {
    const int64_t n = std::min(chunk, columns - j0);
    const torch::Tensor chunk_candidates = candidates.narrow(0, j0, n);
    torch::Tensor chunk_grad = grad_candidates.narrow(0, j0, n);
    const int64_t tile = rows_per_tile(n, anchors.device());
    for (int64_t i0 = 0; i0 < rows; i0 += tile) {
      const int64_t r = std::min(tile, rows - i0);
      const torch::Tensor tile_anchors = anchors.narrow(0, i0, r);
      torch::Tensor scores = masked_scores(anchors, candidates, excluded, i0, r, j0, n, inv_temperature);
      torch::Tensor p;
      if (paired) {
        // c0 = 2 c1 (beta = 1): with E = exp(c1 s - L1), exp(c0 s - L0) = E^2 exp(2 L1 - L0),
        // where 0 <= 2 L1 - L0 <= log N; one exponential instead of two.
        const torch::Tensor l0 = lse[0].narrow(0, i0, r), l1 = lse[1].narrow(0, i0, r);
        const double c1 = coefficients[1];
        const torch::Tensor e = scores.mul_(c1).sub_(l1.unsqueeze(1)).exp_();  // scores are not needed again
        const torch::Tensor w0 = (grad_lse[0].narrow(0, i0, r) * (2 * c1) * (2 * l1 - l0).exp()).unsqueeze(1);
        const torch::Tensor w1 = (grad_lse[1].narrow(0, i0, r) * c1).unsqueeze(1);
        p = e.mul(w0).add_(w1).mul_(e);
      } else {
        for (size_t k = 0; k < coefficients.size(); ++k) {
          const double c = coefficients[k];
          if (c == 0.0) continue;  // a constant in s: no gradient
          const torch::Tensor tile_lse = lse[k].narrow(0, i0, r).unsqueeze(1);
          torch::Tensor term = (c == 1.0 ? scores - tile_lse : scores.mul(c).sub_(tile_lse))
                                   .exp_()
                                   .mul_((grad_lse[k].narrow(0, i0, r) * c).unsqueeze(1));
          p = p.defined() ? p.add_(term) : term;
        }
      }
      if (!p.defined()) continue;
      grad_anchors.narrow(0, i0, r).addmm_(p, chunk_candidates, 1.0, inv_temperature);
      chunk_grad.addmm_(p.t(), tile_anchors, 1.0, inv_temperature);
    }
  }
}

// Per anchor and coefficient c_k: log sum_{j negative} exp(c_k s_ij). Output 0 is K x A
// (differentiable); output 1 is A: log sum_j exp(2 c_w s_ij) for the coefficient index w given
// (for the weight statistics; not differentiable; empty when w < 0).
class NegativeLogSumExp : public torch::autograd::Function<NegativeLogSumExp> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                torch::Tensor anchors, torch::Tensor candidates,
                                                int64_t batch, int64_t offset, int64_t first,
                                                std::vector<double> coefficients,
                                                double inv_temperature, int64_t chunk,
                                                int64_t weight_index) {
    // The candidates are one block of the block form, holding the anchors' own views.
    const NegativeSums plan{coefficients, weight_index, inv_temperature, chunk};
    const ViewLayout own{batch, offset, first};
    NegativeAccumulator sums = start_negative_sums(plan, anchors.size(0), anchors.options());
    add_negative_block(plan, anchors, candidates, &own, sums);
    finish_negative_sums(plan, candidates.size(0) - 2, sums);
    const torch::Tensor& lse = sums.lse;
    torch::Tensor log_sq = sums.log_square_sum;
    ctx->save_for_backward({anchors, candidates, lse});
    ctx->saved_data["layout"] = std::vector<int64_t>{batch, offset, first};
    ctx->saved_data["coefficients"] = coefficients;
    ctx->saved_data["inv_temperature"] = inv_temperature;
    ctx->saved_data["chunk"] = chunk;
    if (!log_sq.defined()) log_sq = torch::empty({0}, anchors.options());
    ctx->mark_non_differentiable({log_sq});
    return {lse, log_sq};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    // Backward runs with the autocast state of the thread that called backward(): recompute the
    // scores in full precision, as forward computed them (torch.amp.custom_bwd's rule).
    const compat::NoAutocast full_precision;
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& anchors = saved[0];
    const torch::Tensor& candidates = saved[1];
    const std::vector<int64_t> layout = ctx->saved_data["layout"].toIntVector();
    const std::vector<Segment> excluded = excluded_segments({layout[0], layout[1], layout[2]}, anchors.size(0));
    torch::Tensor grad_anchors = torch::zeros_like(anchors);
    torch::Tensor grad_candidates = torch::zeros_like(candidates);
    accumulate_sum_gradients(anchors, candidates, excluded, ctx->saved_data["coefficients"].toDoubleVector(),
                             ctx->saved_data["inv_temperature"].toDouble(), ctx->saved_data["chunk"].toInt(),
                             saved[2], grads[0], grad_anchors, grad_candidates);
    return {grad_anchors,    grad_candidates, torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

// log(1 - exp(u)) for u < 0, accurate on both sides of -ln 2.
torch::Tensor log1mexp(const torch::Tensor& u) {
  return torch::where(u.gt(-std::log(2.0)), (-torch::expm1(u)).log(), torch::log1p(-torch::exp(u)));
}

void check_inputs(const torch::Tensor& anchors, const torch::Tensor& candidates, const ViewLayout& layout,
                  const ObjectiveOptions& options) {
  HCL_REQUIRE(anchors.defined() && candidates.defined(), "objective: undefined embeddings");
  HCL_REQUIRE(anchors.dim() == 2 && candidates.dim() == 2,
              "objective: anchors and candidates must be 2-D (rows x dim), got ", anchors.sizes(),
              " and ", candidates.sizes());
  HCL_REQUIRE(anchors.size(1) == candidates.size(1), "objective: embedding dimensions differ: ",
              anchors.size(1), " (anchors) vs ", candidates.size(1), " (candidates)");
  HCL_REQUIRE(anchors.scalar_type() == candidates.scalar_type(), "objective: dtypes differ: ",
              anchors.scalar_type(), " vs ", candidates.scalar_type());
  HCL_REQUIRE(anchors.is_floating_point(), "objective: embeddings must be floating point, got ",
              anchors.scalar_type());
  HCL_REQUIRE(anchors.device() == candidates.device(), "objective: devices differ: ",
              anchors.device(), " vs ", candidates.device());
  HCL_REQUIRE(anchors.size(0) >= 1, "objective: no anchors");
  HCL_REQUIRE(candidates.size(0) >= 4,
              "objective: the batch must hold at least 2 images (4 views, N >= 2 negatives), got ",
              candidates.size(0), " candidate views");
  // The layout comes from hcl's own code (the two-view call, global_objective): an invariant.
  const int64_t views = 2 * layout.batch;
  HCL_ASSERT(layout.batch >= 1 && layout.first >= 0 && layout.first + anchors.size(0) <= views &&
                 layout.offset >= 0 && layout.offset + views <= candidates.size(0),
             "objective: the anchors (view rows [", layout.first, ", ", layout.first + anchors.size(0), ") of ",
             views, ") or their views (candidate rows [", layout.offset, ", ", layout.offset + views,
             ")) are outside the ", candidates.size(0), " candidates");
  if (!options.check_values()) return;
  HCL_REQUIRE(torch::isfinite(anchors).all().item<bool>() &&
                  torch::isfinite(candidates).all().item<bool>(),
              "objective: non-finite embeddings (NaN or inf)");
}

// The candidate rows of the anchors' positives: the positive segments of excluded_segments (an
// anchor's skipped column is a candidate row), so a view or one copy, never an index.
torch::Tensor positives_of(const torch::Tensor& candidates, const std::vector<Segment>& excluded) {
  std::vector<torch::Tensor> parts;
  for (size_t k = 1; k < excluded.size(); ++k)
    parts.push_back(candidates.narrow(0, excluded[k].row + excluded[k].shift, excluded[k].length));
  return parts.size() == 1 ? parts[0] : torch::cat(parts, 0);
}

}  // namespace

void ObjectiveOptions::validate() const {
  HCL_REQUIRE(std::isfinite(temperature()) && temperature() > 0,
              "temperature must be > 0, got ", temperature());
  HCL_REQUIRE(tau_plus() >= 0 && tau_plus() < 1, "tau_plus must be in [0, 1), got ", tau_plus());
  HCL_REQUIRE(std::isfinite(beta()) && beta() >= 0, "beta must be finite and >= 0, got ", beta());
  HCL_REQUIRE(column_chunk() >= 0, "column chunk must be >= 0 (0: unchunked), got ", column_chunk());
}

NegativeSums negative_sums(const ObjectiveOptions& options) {
  const bool hard = options.estimator() == Estimator::Hard;
  const double beta = options.beta();
  NegativeSums sums;
  sums.coefficients = hard ? std::vector<double>{1.0 + beta, beta} : std::vector<double>{1.0};
  // The statistics' weight spread needs sum_j exp(2 beta s_ij) (hard estimator with beta > 0).
  sums.weight_index = options.with_stats() && hard && beta > 0 ? 1 : -1;
  sums.inv_temperature = 1.0 / options.temperature();
  sums.chunk = options.column_chunk();
  return sums;
}

namespace {
int64_t chunk_for(const NegativeSums& sums, int64_t columns) {
  return sums.chunk > 0 ? std::min(sums.chunk, columns) : std::max<int64_t>(columns, 1);
}
std::vector<Segment> own_segments(const ViewLayout* own, int64_t anchors) {
  return own ? excluded_segments(*own, anchors) : std::vector<Segment>{};
}
}  // namespace

NegativeAccumulator start_negative_sums(const NegativeSums& sums, int64_t anchors,
                                        const torch::TensorOptions& options) {
  NegativeAccumulator into;
  into.type = c10::typeMetaToScalarType(options.dtype());
  const auto wide = options.dtype(torch::kDouble);  // the accumulators (accumulate_sums)
  into.lse = torch::full({static_cast<int64_t>(sums.coefficients.size()), anchors}, -kInf, wide);
  if (sums.weight_index >= 0) into.log_square_sum = torch::full({anchors}, -kInf, wide);
  return into;
}

void add_negative_block(const NegativeSums& sums, const torch::Tensor& anchors, const torch::Tensor& block,
                        const ViewLayout* own, NegativeAccumulator& into) {
  accumulate_sums(anchors, block, own_segments(own, anchors.size(0)), sums.coefficients, sums.inv_temperature,
                  chunk_for(sums, block.size(0)), sums.weight_index, into.lse, into.log_square_sum);
}

void finish_negative_sums(const NegativeSums& sums, int64_t negatives, NegativeAccumulator& into) {
  count_constant_sums(sums.coefficients, negatives, into.lse);
  into.lse = into.lse.to(into.type);
  if (into.log_square_sum.defined()) into.log_square_sum = into.log_square_sum.to(into.type);
}

void add_negative_block_gradient(const NegativeSums& sums, const torch::Tensor& anchors, const torch::Tensor& block,
                                 const ViewLayout* own, const torch::Tensor& lse, const torch::Tensor& grad_lse,
                                 torch::Tensor& grad_anchors, torch::Tensor& grad_block) {
  accumulate_sum_gradients(anchors, block, own_segments(own, anchors.size(0)), sums.coefficients,
                           sums.inv_temperature, chunk_for(sums, block.size(0)), lse, grad_lse, grad_anchors,
                           grad_block);
}

ObjectiveResult objective_from_sums(const AnchorSums& in, const ObjectiveOptions& options) {
  const torch::Tensor& lse = in.lse;
  const torch::Tensor& positive_score = in.positive_score;
  const double n_neg = static_cast<double>(in.negatives);
  const double log_n = std::log(n_neg);
  const double inv_t = 1.0 / options.temperature();
  const bool hard = options.estimator() == Estimator::Hard;
  torch::Tensor log_ng;      // log of the negative term Ng_i
  torch::Tensor unfloored;   // hard: the estimator before the floor
  const double log_floor = log_n - inv_t;  // log(N e^(-1/t))
  if (hard) {
    const torch::Tensor log_r = lse[0] - lse[1] + log_n;
    torch::Tensor log_d = log_r;
    if (options.tau_plus() > 0) {
      // D = R - tau_plus N pos = R (1 - exp(u)), u = log(tau_plus N) + s_p - log R; D <= 0 when u >= 0.
      const torch::Tensor u = positive_score - log_r + std::log(options.tau_plus() * n_neg);
      const torch::Tensor below = u.lt(0);
      const torch::Tensor u_safe = torch::where(below, u, torch::full({}, -1.0, u.options()));
      log_d = torch::where(below, log_r + log1mexp(u_safe), torch::full({}, -kInf, u.options()));
    }
    unfloored = log_d - std::log1p(-options.tau_plus());
    log_ng = options.floor() ? unfloored.clamp_min(log_floor) : unfloored;
  } else {
    log_ng = lse[0];
  }
  // -log(pos / (pos + Ng)) = softplus(log Ng - s_p); logaddexp(x, 0) has the exact gradient.
  const torch::Tensor per_anchor = torch::logaddexp(log_ng - positive_score, torch::zeros({}, log_ng.options()));

  ObjectiveResult result;
  result.loss = per_anchor.mean();
  if (!options.with_stats()) return result;

  torch::NoGradGuard no_grad;
  const auto float_options = lse.options().dtype(torch::kFloat);
  auto& s = result.stats;
  s.positive_similarity = positive_score.mean().mul(options.temperature()).to(torch::kFloat);
  s.negative_similarity = in.negative_dot_sum.mean().div(n_neg).to(torch::kFloat);
  s.floor_fraction = hard ? unfloored.lt(log_floor).to(torch::kFloat).mean() : torch::zeros({}, float_options);
  if (in.log_square_sum.defined() && in.log_square_sum.numel() > 0) {
    // sum_j w_j^2 for w = softmax(beta s) is exp(lse(2 beta s) - 2 lse(beta s)).
    const torch::Tensor log_sum_sq = in.log_square_sum - 2 * lse[1];
    s.effective_negatives = (-log_sum_sq).exp().div(n_neg).mean().to(torch::kFloat);
  } else {
    s.effective_negatives = torch::ones({}, float_options);
  }
  return result;
}

ObjectiveResult contrastive_objective(const torch::Tensor& anchors_in,
                                      const torch::Tensor& candidates_in, const ViewLayout& layout,
                                      const ObjectiveOptions& options) {
  options.validate();
  check_inputs(anchors_in, candidates_in, layout, options);
  compat::NoAutocast full_precision;  // scores / t amplify bf16 rounding

  // bfloat16 / float16 inputs are computed in float32 (their gradients come back in their dtype).
  const auto compute_type = anchors_in.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor anchors = anchors_in.to(compute_type);
  const torch::Tensor candidates = candidates_in.to(compute_type);

  const int64_t m = candidates.size(0);
  const NegativeSums plan = negative_sums(options);
  const auto lse_outputs =
      NegativeLogSumExp::apply(anchors, candidates, layout.batch, layout.offset, layout.first, plan.coefficients,
                               plan.inv_temperature, chunk_for(plan, m), plan.weight_index);
  AnchorSums sums;
  sums.lse = lse_outputs[0];
  sums.log_square_sum = lse_outputs[1];
  sums.positive_score = (anchors * positives_of(candidates, excluded_segments(layout, anchors.size(0))))
                            .sum(1)
                            .mul(plan.inv_temperature);
  sums.negatives = m - 2;
  if (options.with_stats()) {
    torch::NoGradGuard no_grad;
    // sum over negatives of z_i . z_j = z_i . (sum of all columns) - z_i . z_self - z_i . z_pos.
    const torch::Tensor self_dot =
        (anchors * candidates.narrow(0, layout.offset + layout.first, anchors.size(0))).sum(1);
    sums.negative_dot_sum =
        anchors.mv(candidates.sum(0)) - self_dot - sums.positive_score.mul(options.temperature());
  }
  return objective_from_sums(sums, options);
}

ObjectiveResult contrastive_objective(const torch::Tensor& z1, const torch::Tensor& z2,
                                      const ObjectiveOptions& options) {
  HCL_REQUIRE(z1.defined() && z2.defined() && z1.sizes() == z2.sizes(),
              "objective: the two views must have the same shape, got ",
              z1.defined() ? z1.sizes() : torch::IntArrayRef{}, " and ",
              z2.defined() ? z2.sizes() : torch::IntArrayRef{});
  HCL_REQUIRE(z1.scalar_type() == z2.scalar_type(), "objective: dtypes differ: ", z1.scalar_type(),
              " vs ", z2.scalar_type());
  HCL_REQUIRE(z1.dim() == 2, "objective: views must be 2-D (batch x dim), got ", z1.sizes());
  const torch::Tensor both = torch::cat({z1, z2}, 0);
  return contrastive_objective(both, both, ViewLayout{z1.size(0), 0, 0}, options);
}

}  // namespace hcl::loss
