// Gather the views of every rank (none at one rank), then the sharded objective on this rank's
// anchors; or the ring form.
#include "train/global_objective.h"

#include "core/check.h"
#include "dist/gather.h"
#include "train/ring_objective.h"

namespace hcl::train {

loss::ObjectiveResult global_objective(dist::Communicator& comm, const torch::Tensor& z1,
                                       const torch::Tensor& z2,
                                       const loss::ObjectiveOptions& options, ObjectiveComm form) {
  if (form == ObjectiveComm::Ring) return ring_objective(comm, z1, z2, options, RingBackward::Resend);
  if (form == ObjectiveComm::RingKeep) return ring_objective(comm, z1, z2, options, RingBackward::Keep);
  HCL_ASSERT(z1.defined() && z2.defined() && z1.dim() == 2 && z1.sizes() == z2.sizes(),
             "global objective: the two views must be B x d tensors of the same shape");
  const int64_t batch = z1.size(0);
  // Rank-major layout: row (r, v, b) of the gathered views sits at r*2B + v*B + b. At one rank the
  // views are their own candidates: no gather, no copy.
  const torch::Tensor local = torch::cat({z1, z2}, 0);
  const torch::Tensor gathered = comm.world_size() == 1 ? local : dist::all_gather_with_grad(comm, local);
  return loss::contrastive_objective(local, gathered, loss::ViewLayout{batch, comm.rank() * 2 * batch, 0}, options);
}

}  // namespace hcl::train
