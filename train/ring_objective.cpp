// The ring objective's autograd function: forward passes the blocks of views round the ring while
// it accumulates loss/'s column sums; backward passes them round again, with their gradients.
#include "train/ring_objective.h"

#include "core/check.h"
#include "core/torch_compat.h"
#include "dist/saved_communicator.h"
#include "dist/stream_order.h"

namespace hcl::train {
namespace {

// `saved`: the autograd context's saved_data (its map type differs across LibTorch versions).
template <typename SavedData>
loss::NegativeSums sums_from(const SavedData& saved) {
  loss::NegativeSums sums;
  sums.coefficients = saved.at("coefficients").toDoubleVector();
  sums.weight_index = saved.at("weight_index").toInt();
  sums.inv_temperature = saved.at("inv_temperature").toDouble();
  sums.chunk = saved.at("chunk").toInt();
  return sums;
}

// Outputs: lse (K x 2B, differentiable), log_square_sum (2B, or empty), the sum of all 2WB views
// (d; for the statistics). The rank's 2B views are its anchors and its own block.
class RingNegativeSums : public torch::autograd::Function<RingNegativeSums> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor local,
                                                dist::Communicator* comm, dist::CollectiveOptions call,
                                                loss::NegativeSums plan) {
    const int world = comm->world_size();
    const int64_t batch = local.size(0) / 2;
    const loss::ViewLayout own{batch, 0, 0};
    loss::NegativeAccumulator sums = loss::start_negative_sums(plan, local.size(0), local.options());
    torch::Tensor column_sum = local.sum(0);
    const auto order = dist::make_stream_order(local.device());
    torch::Tensor block = local;
    for (int step = 0; step < world; ++step) {
      torch::Tensor next;
      // Shapes are checked on the first shift only: every later block has the same shape.
      const dist::CollectiveOptions shift_call = step == 0 ? call : dist::CollectiveOptions::without_shape_check();
      if (step + 1 < world) order->launch([&] { next = comm->ring_shift(block, 1, shift_call); });
      loss::add_negative_block(plan, local, block, step == 0 ? &own : nullptr, sums);
      if (step + 1 < world) {
        order->join();
        block = next;
        column_sum.add_(block.sum(0));
      }
    }
    loss::finish_negative_sums(plan, 2 * batch * world - 2, sums);
    ctx->save_for_backward({local, sums.lse});
    ctx->saved_data["comm"] = dist::save_communicator(*comm, dist::CollectiveOptions::without_shape_check());
    ctx->saved_data["coefficients"] = plan.coefficients;
    ctx->saved_data["weight_index"] = plan.weight_index;
    ctx->saved_data["inv_temperature"] = plan.inv_temperature;
    ctx->saved_data["chunk"] = plan.chunk;
    torch::Tensor log_sq = sums.log_square_sum.defined() ? sums.log_square_sum : torch::empty({0}, local.options());
    ctx->mark_non_differentiable({log_sq, column_sum});
    return {sums.lse, log_sq, column_sum};
  }

  // Step k: this rank holds the block of rank - k and computes its part of that block's gradient,
  // while the next block travels in, together with the gradient of block k that ranks rank - k ..
  // rank - 1 accumulated (this rank sends on, in the same message, the gradient of block k - 1, now
  // complete up to itself). After the last step, one exposed shift returns every block's complete
  // gradient to its owner.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& local = saved[0];
    const torch::Tensor& lse = saved[1];
    const auto holder = dist::saved_communicator(ctx->saved_data["comm"]);
    dist::Communicator& comm = holder->comm();
    const loss::NegativeSums plan = sums_from(ctx->saved_data);
    const int world = comm.world_size();
    const int64_t rows = local.size(0);
    const loss::ViewLayout own{rows / 2, 0, 0};
    const torch::Tensor grad_lse = grads[0].defined() ? grads[0] : torch::zeros_like(lse);
    const auto order = dist::make_stream_order(local.device());

    torch::Tensor grad_local = torch::zeros_like(local);
    torch::Tensor block = local;
    torch::Tensor accumulated;  // the gradient of the block of the previous step, complete up to this rank
    for (int step = 0; step < world; ++step) {
      const bool more_blocks = step + 1 < world;
      torch::Tensor outgoing, incoming;
      if (more_blocks || accumulated.defined()) {
        outgoing = !accumulated.defined() ? block : more_blocks ? torch::cat({block, accumulated}, 0) : accumulated;
        order->launch([&] { incoming = comm.ring_shift(outgoing, 1, holder->call()); });
      }
      torch::Tensor part = torch::zeros_like(local);
      loss::add_negative_block_gradient(plan, local, block, step == 0 ? &own : nullptr, lse, grad_lse, grad_local, part);
      if (incoming.defined()) order->join();
      // What arrived: the next block (if any) and the gradient of this step's block so far (from step 1).
      if (step > 0) part.add_(incoming.narrow(0, incoming.size(0) - rows, rows));
      if (more_blocks) block = incoming.narrow(0, 0, rows);
      accumulated = part;
    }
    if (world > 1) accumulated = comm.ring_shift(accumulated, 1, holder->call());
    grad_local.add_(accumulated);
    return {grad_local, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

loss::ObjectiveResult ring_objective(dist::Communicator& comm, const torch::Tensor& z1, const torch::Tensor& z2,
                                     const loss::ObjectiveOptions& options) {
  HCL_ASSERT(z1.defined() && z2.defined() && z1.dim() == 2 && z1.sizes() == z2.sizes(),
             "ring objective: the two views must be B x d tensors of the same shape");
  options.validate();
  HCL_REQUIRE(2 * z1.size(0) * comm.world_size() >= 4,
              "objective: the batch must hold at least 2 images (4 views, N >= 2 negatives)");
  compat::NoCudaAutocast full_precision;  // scores / t amplify bf16 rounding
  // bfloat16 / float16 views are computed (and travel) in float32, as in the all-gather form.
  const auto compute_type = z1.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor local = torch::cat({z1, z2}, 0).to(compute_type);
  if (options.check_values())
    HCL_REQUIRE(torch::isfinite(local).all().item<bool>(), "objective: non-finite embeddings (NaN or inf)");

  const loss::NegativeSums plan = loss::negative_sums(options);
  const auto outputs = RingNegativeSums::apply(local, &comm, dist::CollectiveOptions{}, plan);
  const int64_t batch = z1.size(0);
  loss::AnchorSums sums;
  sums.lse = outputs[0];
  sums.log_square_sum = outputs[1];
  const torch::Tensor positives = torch::cat({local.narrow(0, batch, batch), local.narrow(0, 0, batch)}, 0);
  sums.positive_score = (local * positives).sum(1).mul(plan.inv_temperature);
  sums.negatives = 2 * batch * comm.world_size() - 2;
  if (options.with_stats()) {
    torch::NoGradGuard no_grad;
    // sum over negatives of z_i . z_j = z_i . (sum of all views) - z_i . z_i - z_i . z_p(i).
    sums.negative_dot_sum = local.mv(outputs[2]) - (local * local).sum(1) -
                            sums.positive_score.mul(options.temperature());
  }
  return loss::objective_from_sums(sums, options);
}

}  // namespace hcl::train
