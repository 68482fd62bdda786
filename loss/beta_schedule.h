// Schedules of the hardness beta over training, queried by the trainer once per epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/named_enum.h"

namespace hcl::loss {

enum class BetaScheduleKind { Constant, Down };

class BetaSchedule {
 public:
  virtual ~BetaSchedule() = default;
  // beta for a 0-based epoch of the run.
  virtual double beta(int64_t epoch) const = 0;
  virtual std::string describe() const = 0;
};

// The same beta throughout.
class ConstantBeta final : public BetaSchedule {
 public:
  explicit ConstantBeta(double beta);
  double beta(int64_t epoch) const override;
  std::string describe() const override;

 private:
  double beta_;
};

// The reference's "down" annealing: the run is cut into 10 equal phases and beta drops by beta0/9
// at the start of each phase after the first, reaching 0 in the last (9 equal steps). Runs of
// fewer than 10 epochs skip levels (a 3-epoch run sees 1, 2/3 and 1/3 of beta0).
class DownAnnealedBeta final : public BetaSchedule {
 public:
  DownAnnealedBeta(double beta0, int64_t total_epochs);
  double beta(int64_t epoch) const override;
  std::string describe() const override;

 private:
  double beta0_;
  int64_t total_epochs_;
};

// Throws hcl::Error naming a bad value.
std::unique_ptr<BetaSchedule> make_beta_schedule(BetaScheduleKind kind, double beta, int64_t total_epochs);

}  // namespace hcl::loss

template <>
struct hcl::EnumNames<hcl::loss::BetaScheduleKind> {
  static constexpr NamedValue<loss::BetaScheduleKind> table[] = {
      {loss::BetaScheduleKind::Constant, "constant"},
      {loss::BetaScheduleKind::Down, "down", "to 0 in 9 steps over the run"},
  };
};
