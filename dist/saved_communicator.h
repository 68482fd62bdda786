// A Communicator (and the call's options) in an autograd function's saved data, for the backward
// pass: all_gather_with_grad and SyncBatchNorm run collectives in both directions.
//
// autograd::Function keeps what backward needs in ctx->saved_data, a map of IValues. An IValue
// holds an object of ours as a TorchScript custom class: a torch::CustomClassHolder subclass that
// torch::class_ has registered (LibTorch's one general mechanism for C++ objects in IValues; it
// checks the type when the object is taken out). The holder does not own the communicator: the
// caller keeps it alive until backward has run, as it must for the forward pass too.
#pragma once

#include <torch/custom_class.h>

#include "dist/communicator.h"

namespace hcl::dist {

class SavedCommunicator : public torch::CustomClassHolder {
 public:
  SavedCommunicator(Communicator& comm, CollectiveOptions call) : comm_(&comm), call_(call) {}
  Communicator& comm() const { return *comm_; }
  const CollectiveOptions& call() const { return call_; }

 private:
  Communicator* comm_;
  CollectiveOptions call_;
};

// The IValue to store in ctx->saved_data (registers the class on first use).
c10::IValue save_communicator(Communicator& comm, const CollectiveOptions& call = {});
// The holder stored by save_communicator; InternalError for any other IValue.
c10::intrusive_ptr<SavedCommunicator> saved_communicator(const c10::IValue& value);

}  // namespace hcl::dist
