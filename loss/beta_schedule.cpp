// Beta schedules: constant and the reference's "down" annealing.
#include "loss/beta_schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/check.h"

namespace hcl::loss {

ConstantBeta::ConstantBeta(double beta) : beta_(beta) {
  HCL_REQUIRE(std::isfinite(beta) && beta >= 0, "beta must be finite and >= 0, got ", beta);
}
double ConstantBeta::beta(int64_t) const { return beta_; }
std::string ConstantBeta::describe() const { return detail::concat("constant ", beta_); }

DownAnnealedBeta::DownAnnealedBeta(double beta0, int64_t total_epochs)
    : beta0_(beta0), total_epochs_(total_epochs) {
  HCL_REQUIRE(std::isfinite(beta0) && beta0 >= 0, "beta must be finite and >= 0, got ", beta0);
  HCL_REQUIRE(total_epochs >= 1, "the down beta schedule needs >= 1 epoch, got ", total_epochs);
}

double DownAnnealedBeta::beta(int64_t epoch) const {
  const int64_t clamped = std::clamp<int64_t>(epoch, 0, total_epochs_ - 1);
  const int64_t step = std::min<int64_t>(9, (10 * clamped) / total_epochs_);
  return beta0_ * (1.0 - static_cast<double>(step) / 9.0);
}

std::string DownAnnealedBeta::describe() const {
  return detail::concat("down from ", beta0_, " to 0 in 9 steps over ", total_epochs_, " epochs");
}

std::unique_ptr<BetaSchedule> make_beta_schedule(BetaScheduleKind kind, double beta, int64_t total_epochs) {
  switch (kind) {
    case BetaScheduleKind::Constant: return std::make_unique<ConstantBeta>(beta);
    case BetaScheduleKind::Down: return std::make_unique<DownAnnealedBeta>(beta, total_epochs);
  }
  HCL_ASSERT(false, "beta schedule ", static_cast<int>(kind), " not handled");
  return nullptr;
}

}  // namespace hcl::loss
