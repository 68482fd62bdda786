// The global-batch objective: where dist/ and loss/ meet. Each rank passes the two views of its B
// images; the rank's 2B anchors are scored against all 2WB views gathered from every rank, so
// N = 2WB - 2 negatives per anchor, exactly as one process with the WB images would see them.
//
// Scale (design, section 2): the returned loss is the mean over this rank's 2B anchors; with the
// gather's SUM backward, averaging parameter gradients over ranks then gives exactly the gradient
// of the global mean loss. The global loss itself is the average of the ranks' losses.
#pragma once

#include <torch/torch.h>

#include "core/named_enum.h"
#include "dist/communicator.h"
#include "loss/objective.h"

namespace hcl::train {

// How the ranks' views meet: one all-gather (the default; autograd through the gather), or the
// ring of train/ring_objective.h (the same loss and gradients, per-rank memory independent of W),
// whose backward either sends the blocks round again (Ring) or keeps them from forward (RingKeep).
enum class ObjectiveComm { AllGather, Ring, RingKeep };

// Collective. z1, z2: B x d on every rank (the same B everywhere).
loss::ObjectiveResult global_objective(dist::Communicator& comm, const torch::Tensor& z1,
                                       const torch::Tensor& z2,
                                       const loss::ObjectiveOptions& options,
                                       ObjectiveComm form = ObjectiveComm::AllGather);

}  // namespace hcl::train

template <>
struct hcl::EnumNames<hcl::train::ObjectiveComm> {
  static constexpr NamedValue<train::ObjectiveComm> table[] = {
      {train::ObjectiveComm::AllGather, "allgather", "gather all views; default"},
      {train::ObjectiveComm::Ring, "ring", "blocks round a ring; memory independent of the ranks"},
      {train::ObjectiveComm::RingKeep, "ring-keep", "ring; backward sends only gradients, memory grows with the ranks"},
  };
};
