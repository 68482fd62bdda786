// The autograd function behind dist::all_gather_with_grad.
#include "dist/gather.h"

namespace hcl::dist {
namespace {

// CollectiveOptions::check_shape as an IValue-friendly integer: -1 unset, 0 off, 1 on.
int64_t encode(const CollectiveOptions& call) { return call.check_shape ? (*call.check_shape ? 1 : 0) : -1; }
CollectiveOptions decode(int64_t code) { return code < 0 ? CollectiveOptions{} : CollectiveOptions{code == 1}; }

class AllGatherFunction : public torch::autograd::Function<AllGatherFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor local,
                               int64_t comm_address, int64_t check_shape) {
    ctx->saved_data["comm"] = comm_address;
    ctx->saved_data["check_shape"] = check_shape;
    return reinterpret_cast<Communicator*>(comm_address)->all_gather(local, decode(check_shape));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* comm = reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
    const CollectiveOptions call = decode(ctx->saved_data["check_shape"].toInt());
    torch::Tensor grad_local = comm->reduce_scatter(grads[0].contiguous(), ReduceOp::Sum, call);
    return {grad_local, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor all_gather_with_grad(Communicator& comm, const torch::Tensor& local, const CollectiveOptions& call) {
  // The communicator travels as an address: autograd's saved data holds only IValues.
  return AllGatherFunction::apply(local, reinterpret_cast<int64_t>(&comm), encode(call));
}

}  // namespace hcl::dist
