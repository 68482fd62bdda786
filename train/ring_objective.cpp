// The ring objective's autograd function: forward passes the blocks of views round the ring while
// it accumulates loss/'s column sums; backward either passes them round again with their gradients
// (Resend) or scores the blocks kept from forward and sends only the gradients (Keep).
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

// What backward needs, unpacked from the autograd context.
struct BackwardInputs {
  loss::NegativeSums plan;
  torch::Tensor local, lse, grad_lse;
  std::vector<torch::Tensor> kept;  // Keep: the block of forward step s at s (kept[0] is local)
  int world = 1;
};

// Resend. Step s: this rank holds the block of rank - s and computes its part of that block's
// gradient, while the next block travels in together with the gradient of block s that ranks
// rank - s .. rank - 1 accumulated (this rank sends on, in the same message, the gradient of block
// s - 1, now complete up to itself). After the last step, one exposed shift returns every block's
// complete gradient to its owner. Two message buffers of [block; gradient] swap roles every step,
// so the rank holds 7 blocks' worth of rows at most (its views, their gradient, the two messages,
// the part being computed), whatever W.
torch::Tensor resend_backward(dist::Communicator& comm, const dist::CollectiveOptions& call, const BackwardInputs& in) {
  const int64_t rows = in.local.size(0);
  const loss::ViewLayout own{rows / 2, 0, 0};
  const int next = (comm.rank() + 1) % in.world, previous = (comm.rank() + in.world - 1) % in.world;
  const auto order = dist::make_stream_order(in.local.device());
  torch::Tensor grad_local = torch::zeros_like(in.local);
  torch::Tensor held = torch::empty({2 * rows, in.local.size(1)}, in.local.options());
  torch::Tensor arriving = torch::empty_like(held);
  held.narrow(0, 0, rows).copy_(in.local);
  const auto block_of = [&](torch::Tensor& m) { return m.narrow(0, 0, rows); };
  const auto gradient_of = [&](torch::Tensor& m) { return m.narrow(0, rows, rows); };
  for (int step = 0; step < in.world; ++step) {
    const bool more_blocks = step + 1 < in.world, has_gradient = step > 0;
    // The message: the block (while another follows it) and the previous block's gradient (from step 1).
    const int64_t first = more_blocks ? 0 : rows, count = (more_blocks ? rows : 0) + (has_gradient ? rows : 0);
    if (count > 0)
      order->launch([&] {
        torch::Tensor into = arriving.narrow(0, first, count);
        comm.sendrecv(held.narrow(0, first, count), next, into, previous, call);
      });
    torch::Tensor part = torch::zeros_like(in.local);
    loss::add_negative_block_gradient(in.plan, in.local, block_of(held), step == 0 ? &own : nullptr, in.lse,
                                      in.grad_lse, grad_local, part);
    if (count > 0) order->join();
    // gradient of this step's block = this rank's part + what the ranks before it added (from step 1).
    if (has_gradient) gradient_of(arriving).add_(part);
    else gradient_of(arriving).copy_(part);
    std::swap(held, arriving);
  }
  torch::Tensor home = gradient_of(arriving);  // at one rank, sendrecv to itself is a copy
  comm.sendrecv(gradient_of(held), next, home, previous, call);
  return grad_local.add_(home);
}

// Keep: the blocks are scored again from memory, and only gradients travel, as a ring
// reduce-scatter. The gradient of rank o's block starts at rank o + 1 and gathers each rank's part
// on its way round; so at step k this rank scores the block of forward step k + 1 (rank - k - 1),
// adds what the rank behind sent for that block, and sends it on while scoring the next. Its own
// block comes last: its gradient arrives complete but for this rank's part, during that work.
torch::Tensor keep_backward(dist::Communicator& comm, const dist::CollectiveOptions& call, const BackwardInputs& in) {
  const int64_t rows = in.local.size(0);
  const loss::ViewLayout own{rows / 2, 0, 0};
  const auto order = dist::make_stream_order(in.local.device());
  torch::Tensor grad_local = torch::zeros_like(in.local);
  torch::Tensor sending, incoming;  // `sending` stays alive until the shift that reads it is joined
  for (int k = 0; k < in.world; ++k) {
    const int s = (k + 1) % in.world;
    torch::Tensor part = torch::zeros_like(in.local);
    loss::add_negative_block_gradient(in.plan, in.local, in.kept[s], s == 0 ? &own : nullptr, in.lse, in.grad_lse,
                                      grad_local, part);
    if (k > 0) {
      order->join();
      part.add_(incoming);
    }
    if (k + 1 < in.world) {
      sending = part;
      order->launch([&] { incoming = comm.ring_shift(sending, 1, call); });
    } else {
      grad_local.add_(part);
    }
  }
  return grad_local;
}

// Outputs: lse (K x 2B, differentiable), log_square_sum (2B, or empty), the sum of all 2WB views
// (d; for the statistics). The rank's 2B views are its anchors and its own block.
class RingNegativeSums : public torch::autograd::Function<RingNegativeSums> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor local,
                                                dist::Communicator* comm, dist::CollectiveOptions call,
                                                loss::NegativeSums plan, bool keep_blocks) {
    const int world = comm->world_size();
    const int64_t batch = local.size(0) / 2;
    const loss::ViewLayout own{batch, 0, 0};
    loss::NegativeAccumulator sums = loss::start_negative_sums(plan, local.size(0), local.options());
    torch::Tensor column_sum = local.sum(0);
    const auto order = dist::make_stream_order(local.device());
    std::vector<torch::Tensor> saved{local};  // then the lse, then (Keep) the blocks of steps 1 ..
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
        if (keep_blocks) saved.push_back(block);
      }
    }
    loss::finish_negative_sums(plan, 2 * batch * world - 2, sums);
    saved.insert(saved.begin() + 1, sums.lse);
    ctx->save_for_backward(saved);
    ctx->saved_data["comm"] = dist::save_communicator(*comm, dist::CollectiveOptions::without_shape_check());
    ctx->saved_data["coefficients"] = plan.coefficients;
    ctx->saved_data["weight_index"] = plan.weight_index;
    ctx->saved_data["inv_temperature"] = plan.inv_temperature;
    ctx->saved_data["chunk"] = plan.chunk;
    ctx->saved_data["keep_blocks"] = keep_blocks;
    torch::Tensor log_sq = sums.log_square_sum.defined() ? sums.log_square_sum : torch::empty({0}, local.options());
    ctx->mark_non_differentiable({log_sq, column_sum});
    return {sums.lse, log_sq, column_sum};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const compat::NoAutocast full_precision;  // as forward: see loss/objective.cpp's backward
    const auto saved = ctx->get_saved_variables();
    const auto holder = dist::saved_communicator(ctx->saved_data["comm"]);
    dist::Communicator& comm = holder->comm();
    BackwardInputs in;
    in.plan = sums_from(ctx->saved_data);
    in.local = saved[0];
    in.lse = saved[1];
    in.grad_lse = grads[0].defined() ? grads[0] : torch::zeros_like(in.lse);
    in.world = comm.world_size();
    const bool keep_blocks = ctx->saved_data["keep_blocks"].toBool();
    if (keep_blocks) {
      in.kept.push_back(in.local);
      in.kept.insert(in.kept.end(), saved.begin() + 2, saved.end());
    }
    torch::Tensor grad_local = keep_blocks ? keep_backward(comm, holder->call(), in)
                                           : resend_backward(comm, holder->call(), in);
    return {grad_local, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

loss::ObjectiveResult ring_objective(dist::Communicator& comm, const torch::Tensor& z1, const torch::Tensor& z2,
                                     const loss::ObjectiveOptions& options, RingBackward backward) {
  HCL_ASSERT(z1.defined() && z2.defined() && z1.dim() == 2 && z1.sizes() == z2.sizes(),
             "ring objective: the two views must be B x d tensors of the same shape");
  options.validate();
  HCL_REQUIRE(2 * z1.size(0) * comm.world_size() >= 4,
              "objective: the batch must hold at least 2 images (4 views, N >= 2 negatives)");
  compat::NoAutocast full_precision;  // scores / t amplify bf16 rounding
  // bfloat16 / float16 views are computed (and travel) in float32, as in the all-gather form.
  const auto compute_type = z1.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  const torch::Tensor local = torch::cat({z1, z2}, 0).to(compute_type);
  if (options.check_values())
    HCL_REQUIRE(torch::isfinite(local).all().item<bool>(), "objective: non-finite embeddings (NaN or inf)");

  const loss::NegativeSums plan = loss::negative_sums(options);
  const auto outputs =
      RingNegativeSums::apply(local, &comm, dist::CollectiveOptions{}, plan, backward == RingBackward::Keep);
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
