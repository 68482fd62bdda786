// The contrastive objective family of Robinson et al. (ICLR 2021), computed in log space: the
// hard-negative estimator (HCL), its debiased (beta = 0) and SimCLR (beta = 0, tau_plus = 0) special
// cases, and the plain NT-Xent estimator ("easy"). Pure tensor math: no communication, no ranks.
//
// Sharded form: anchors (A x d, one loss row each) are scored against candidates (M x d); every
// anchor skips its own view and its positive (ViewLayout says where they are), so it has N = M - 2
// negatives. The single-process call (two views of B images) and the global-batch call (a rank's 2B
// anchors against all 2WB gathered views) are both this one function. Formulas: docs/design.md, sec. 1.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "core/named_enum.h"

namespace hcl::loss {

enum class Estimator { Hard, Easy };

struct ObjectiveOptions {
  // (TORCH_ARG leaves the struct in a private section; validate() is public.)
  TORCH_ARG(double, temperature) = 0.5;
  TORCH_ARG(double, tau_plus) = 0.1;
  TORCH_ARG(double, beta) = 1.0;
  TORCH_ARG(Estimator, estimator) = Estimator::Hard;
  // Clamp the hard estimator at N * e^(-1/t), as the reference does.
  TORCH_ARG(bool, floor) = true;
  // Columns per chunk (0: all at once). Chunks bound memory by A x chunk; backward recomputes them.
  TORCH_ARG(int64_t, column_chunk) = 0;
  // Check that embeddings are finite and indices valid: synchronises with the host, so a fast GPU
  // path may switch it off.
  TORCH_ARG(bool, check_values) = true;
  // Compute the statistics below (cheap, within the same pass over the columns).
  TORCH_ARG(bool, with_stats) = true;


 public:
  // Throws hcl::Error naming the first invalid value.
  void validate() const;
  // Every field equal (a CUDA graph that baked these in can be replayed for the other).
  bool operator==(const ObjectiveOptions& o) const {
    return temperature_ == o.temperature_ && tau_plus_ == o.tau_plus_ && beta_ == o.beta_ &&
           estimator_ == o.estimator_ && floor_ == o.floor_ && column_chunk_ == o.column_chunk_ &&
           check_values_ == o.check_values_ && with_stats_ == o.with_stats_;
  }
  bool operator!=(const ObjectiveOptions& o) const { return !(*this == o); }
};

// Detached 0-dim float tensors on the inputs' device, read by the trainer only at log steps.
struct ObjectiveStats {
  torch::Tensor positive_similarity;  // mean z_i . z_p(i) over anchors
  torch::Tensor negative_similarity;  // mean z_i . z_j over anchors and their negatives
  torch::Tensor floor_fraction;       // fraction of anchors whose estimator is below the floor
  // Mean over anchors of the effective number of negatives of the importance weights
  // softmax_j(beta s_ij), 1 / sum_j w_ij^2, divided by N: 1 for uniform weights (easy, beta = 0),
  // towards 1/N as the weight concentrates on the hardest negative.
  torch::Tensor effective_negatives;
};

struct ObjectiveResult {
  torch::Tensor loss;  // mean over the anchors (differentiable)
  ObjectiveStats stats;
};

// Where the anchors' own views and positives are among the candidates: candidate rows
// [offset, offset + 2B) hold [view 0 of B images; view 1 of the same images], and the anchors are
// the views [first, first + A) of those 2B. The anchor of view row v skips the candidate columns
// offset + v (itself) and offset + (v + B) mod 2B (its positive): diagonals of the score matrix,
// masked without any index tensor.
struct ViewLayout {
  int64_t batch = 0;   // B
  int64_t offset = 0;  // the candidate row of view row 0 (a rank's first row in the gathered views)
  int64_t first = 0;   // the view row of anchor 0
};

// The sharded form. anchors: A x d; candidates: M x d (same dtype and device; float64, float32,
// or bfloat16/float16, which are computed in float32).
ObjectiveResult contrastive_objective(const torch::Tensor& anchors, const torch::Tensor& candidates,
                                      const ViewLayout& layout, const ObjectiveOptions& options);

// Block form, for callers whose candidate columns arrive in blocks (the ring form of the global
// batch, train/ring_objective.h). Every statistic is a sum over columns, so the blocks add up in log
// space to the sharded form's values (to rounding), and the per-anchor algebra runs once at the end.
// Embeddings are float32 or float64 here (the caller converts half precision).
struct NegativeSums {
  std::vector<double> coefficients;  // c_k: lse row k is log sum over negatives of exp(c_k s_ij)
  int64_t weight_index = -1;         // the c_w whose exp(2 c_w s) the statistics need (-1: none)
  double inv_temperature = 2.0;
  int64_t chunk = 0;                 // columns per chunk within a block (0: the whole block)
};
NegativeSums negative_sums(const ObjectiveOptions& options);

// Per-anchor accumulators: lse (K x A) and log_square_sum (A; undefined without statistics), in
// float64 while blocks are added (so the result does not depend on the blocks and chunks), in the
// embeddings' dtype (`type`) after finish_negative_sums.
struct NegativeAccumulator {
  torch::Tensor lse, log_square_sum;
  torch::ScalarType type = torch::kFloat;
};
NegativeAccumulator start_negative_sums(const NegativeSums& sums, int64_t anchors, const torch::TensorOptions& options);
// Adds the columns of `block`. `own`: where the anchors' own 2B views sit in the block (their own
// and positive columns are skipped); nullptr for a block of other images.
void add_negative_block(const NegativeSums& sums, const torch::Tensor& anchors, const torch::Tensor& block,
                        const ViewLayout* own, NegativeAccumulator& into);
// After the last block: the rows of coefficient 0 count the `negatives`.
void finish_negative_sums(const NegativeSums& sums, int64_t negatives, NegativeAccumulator& into);
// Backward of add_negative_block, given the final lse and its gradient: adds into grad_anchors (A x d)
// and grad_block (the block's rows).
void add_negative_block_gradient(const NegativeSums& sums, const torch::Tensor& anchors, const torch::Tensor& block,
                                 const ViewLayout* own, const torch::Tensor& lse, const torch::Tensor& grad_lse,
                                 torch::Tensor& grad_anchors, torch::Tensor& grad_block);

// The per-anchor algebra once the sums are complete (both forms end here).
struct AnchorSums {
  torch::Tensor lse;               // K x A, differentiable
  torch::Tensor log_square_sum;    // A (statistics; may be undefined)
  torch::Tensor positive_score;    // A: s_i,p(i), differentiable
  torch::Tensor negative_dot_sum;  // A: sum over the negatives of z_i . z_j (statistics only)
  int64_t negatives = 0;           // N
};
ObjectiveResult objective_from_sums(const AnchorSums& sums, const ObjectiveOptions& options);

// Two views of B images: the 2B rows [z1; z2] are both anchors and candidates (the reference's call).
ObjectiveResult contrastive_objective(const torch::Tensor& z1, const torch::Tensor& z2,
                                      const ObjectiveOptions& options);

}  // namespace hcl::loss

template <>
struct hcl::EnumNames<hcl::loss::Estimator> {
  static constexpr NamedValue<loss::Estimator> table[] = {
      {loss::Estimator::Hard, "hard", "HCL; beta 0: debiased"},
      {loss::Estimator::Easy, "easy", "SimCLR"},
  };
};
