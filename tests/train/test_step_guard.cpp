// StepGuard: a non-finite loss or gradient on one rank skips the step on every rank (gradients
// zeroed, BatchNorm buffers restored, the skip counted), finite steps go ahead, and K skips in a row
// raise AgreedError on every rank. Also the HCL_FAULT parser.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/check.h"
#include "tests/support/mpi_world.h"
#include "tests/support/tiny_net.h"
#include "core/fault_injection.h"
#include "train/step_guard.h"

namespace hcl::train {
namespace {

using Net = test::TinyNet;

// One forward and backward on this rank's data; `poison` makes this rank's loss NaN.
torch::Tensor step(Net& net, bool poison) {
  const torch::Tensor x = torch::randn({8, 4}) + test::world_rank();
  torch::Tensor loss = net.forward(x).pow(2).mean();
  if (poison) loss = loss * std::nan("");
  for (auto& p : net.parameters()) p.mutable_grad() = torch::Tensor();
  loss.backward();
  return loss.detach();
}

TEST(StepGuard, NonFiniteOnOneRankSkipsOnEveryRank) {
  dist::Communicator comm;
  const int last = comm.world_size() - 1;
  Net net;
  StepGuard guard(net, 3);

  guard.before_forward();
  step(net, false);
  EXPECT_TRUE(guard.check(comm, torch::tensor(1.0), 1));
  EXPECT_TRUE(std::isfinite(guard.grad_norm().item<double>()));
  EXPECT_GT(guard.grad_norm().item<double>(), 0);

  const torch::Tensor mean_before = net.norm->running_mean.clone();
  const int64_t batches_before = net.norm->num_batches_tracked.item<int64_t>();
  guard.before_forward();
  const torch::Tensor loss = step(net, comm.rank() == last);
  EXPECT_FALSE(guard.check(comm, loss, 2));  // every rank, though only the last one saw NaN
  EXPECT_EQ(guard.skipped(), 1);
  EXPECT_EQ(guard.consecutive(), 1);
  for (const auto& p : net.parameters()) EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
  EXPECT_TRUE(torch::equal(net.norm->running_mean, mean_before));
  EXPECT_EQ(net.norm->num_batches_tracked.item<int64_t>(), batches_before);

  guard.before_forward();
  step(net, false);
  EXPECT_TRUE(guard.check(comm, torch::tensor(1.0), 3));
  EXPECT_EQ(guard.consecutive(), 0);
  EXPECT_EQ(guard.skipped(), 1);
}

TEST(StepGuard, StopsAfterMaxConsecutiveSkipsOnEveryRank) {
  dist::Communicator comm;
  Net net;
  StepGuard guard(net, 2);
  guard.before_forward();
  step(net, comm.rank() == 0);
  EXPECT_FALSE(guard.check(comm, torch::tensor(1.0), 1));
  guard.before_forward();
  const torch::Tensor loss = step(net, false);
  // Non-finite gradient on rank 0 only (finite loss everywhere).
  if (comm.rank() == 0) net.linear->weight.mutable_grad()[0][0] = std::numeric_limits<float>::infinity();
  try {
    guard.check(comm, loss, 2);
    FAIL() << "expected AgreedError";
  } catch (const AgreedError& e) {
    EXPECT_NE(std::string(e.what()).find("2 consecutive steps (up to step 2"), std::string::npos) << e.what();
  }
}

// The decision on the device has check()'s effects exactly (gradients, buffers, counts), except
// that the counts and the log arrive when settle() reads the recorded flags.
TEST(StepGuard, DeviceDecisionEqualsHostDecision) {
  dist::Communicator comm;
  const int last = comm.world_size() - 1;
  Net host_net, device_net;
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < host_net.parameters().size(); ++i)
      device_net.parameters()[i].copy_(host_net.parameters()[i]);
  }
  StepGuard host(host_net, 5), device(device_net, 5);
  for (int64_t k = 1; k <= 4; ++k) {
    const bool poison = k == 2 && comm.rank() == last;  // step 2: NaN loss on the last rank
    torch::manual_seed(k);
    host.before_forward();
    const torch::Tensor host_loss = step(host_net, poison);
    torch::manual_seed(k);
    device.before_forward();
    const torch::Tensor device_loss = step(device_net, poison);
    if (k == 3 && comm.rank() == 0)  // step 3: an infinite gradient on rank 0
      for (Net* net : {&host_net, &device_net})
        net->linear->weight.mutable_grad()[0][0] = std::numeric_limits<float>::infinity();
    const bool applied = host.check(comm, host_loss, k);
    const torch::Tensor skip = device.decide_on_device(comm, device_loss);
    EXPECT_EQ(skip.item<float>(), applied ? 0.0f : 1.0f) << "step " << k;
    EXPECT_EQ(applied, k != 2 && k != 3) << "step " << k;
    for (size_t i = 0; i < host_net.parameters().size(); ++i)
      EXPECT_TRUE(torch::equal(host_net.parameters()[i].grad(), device_net.parameters()[i].grad()))
          << "step " << k << " gradient " << i;
    for (size_t i = 0; i < host_net.buffers().size(); ++i)
      EXPECT_TRUE(torch::equal(host_net.buffers()[i], device_net.buffers()[i])) << "step " << k << " buffer " << i;
    EXPECT_TRUE(torch::equal(host.grad_norm(), device.grad_norm()) ||
                (std::isnan(host.grad_norm().item<float>()) && std::isnan(device.grad_norm().item<float>())));
    device.record(skip, k);
    EXPECT_EQ(device.skipped(), (k > 2) + (k > 3)) << "step " << k << " is counted when settled";
    const std::vector<SkipRecord> skips = device.settle();
    EXPECT_EQ(device.skipped(), host.skipped()) << "step " << k;
    EXPECT_EQ(device.consecutive(), host.consecutive()) << "step " << k;
    ASSERT_EQ(skips.size(), applied ? 0u : 1u);
    if (!applied) {
      EXPECT_EQ(skips[0].step, k);
    }
  }
  EXPECT_EQ(device.skipped(), 2);
  EXPECT_TRUE(device.settle().empty());  // each decision is counted once
}

TEST(StepGuard, DeviceDecisionStopsWhenTheSkipsAreSettled) {
  dist::Communicator comm;
  Net net;
  StepGuard guard(net, 2);
  for (int64_t k = 1; k <= 2; ++k) {
    guard.before_forward();
    const torch::Tensor loss = step(net, comm.rank() == 0);
    guard.record(guard.decide_on_device(comm, loss), k);  // no throw: nothing read yet
  }
  try {
    guard.settle();
    FAIL() << "expected AgreedError";
  } catch (const AgreedError& e) {
    EXPECT_NE(std::string(e.what()).find("2 consecutive steps (up to step 2"), std::string::npos) << e.what();
  }
}

TEST(FaultPlan, ParsesTheTestFaults) {
  HCL_ONLY_AT_RANKS(1);
  EXPECT_EQ(parse_fault_plan("").kind, FaultPlan::Kind::None);
  const FaultPlan t = parse_fault_plan("throw:step=3:rank=2");
  EXPECT_TRUE(t.at(FaultPlan::Kind::Throw, 3, 2));
  EXPECT_FALSE(t.at(FaultPlan::Kind::Throw, 3, 1));
  EXPECT_FALSE(t.at(FaultPlan::Kind::Throw, 4, 2));
  EXPECT_FALSE(t.at(FaultPlan::Kind::NanGrad, 3, 2));
  const FaultPlan n = parse_fault_plan("nan-grad:step=2-5");
  EXPECT_TRUE(n.at(FaultPlan::Kind::NanGrad, 2, 0) && n.at(FaultPlan::Kind::NanGrad, 5, 7));
  EXPECT_FALSE(n.at(FaultPlan::Kind::NanGrad, 6, 0) || n.at(FaultPlan::Kind::NanGrad, 1, 0));
  const FaultPlan k = parse_fault_plan("kill-in-checkpoint:byte=5000:write=2");
  EXPECT_EQ(k.byte, 5000);
  EXPECT_EQ(k.write, 2);
  EXPECT_EQ(parse_fault_plan("capture-fail").kind, FaultPlan::Kind::CaptureFail);
  {
    const ScopedFaultPlan injected(parse_fault_plan("capture-fail"));
    EXPECT_EQ(fault_plan().kind, FaultPlan::Kind::CaptureFail);
  }
  EXPECT_EQ(fault_plan().kind, FaultPlan::Kind::None);
  for (const char* bad : {"explode:step=1", "throw", "throw:step=0", "throw:step=5-3", "throw:step=x",
                          "throw:step=1:colour=red", "throw:step", "kill-in-checkpoint:write=1"})
    EXPECT_THROW(parse_fault_plan(bad), Error) << bad;
}

}  // namespace
}  // namespace hcl::train
