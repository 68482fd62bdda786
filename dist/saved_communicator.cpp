// Registration and access of SavedCommunicator (see dist/saved_communicator.h).
#include "dist/saved_communicator.h"

#include "core/check.h"

namespace hcl::dist {

c10::IValue save_communicator(Communicator& comm, const CollectiveOptions& call) {
  // Registered once, on the first call (thread-safe static), so that no static initialiser has to
  // survive the static library's linking.
  static const auto registration = torch::class_<SavedCommunicator>("hcl", "SavedCommunicator");
  (void)registration;
  return c10::IValue(c10::make_intrusive<SavedCommunicator>(comm, call));
}

c10::intrusive_ptr<SavedCommunicator> saved_communicator(const c10::IValue& value) {
  HCL_ASSERT(value.isObject(), "autograd saved data holds ", value.tagKind(), ", not a communicator");
  return value.toCustomClass<SavedCommunicator>();
}

}  // namespace hcl::dist
