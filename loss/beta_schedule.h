// Schedules of the hardness beta over training, queried by the trainer once per epoch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace hcl::loss {

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

// "constant" or "down"; throws hcl::Error naming a bad name or value.
std::unique_ptr<BetaSchedule> make_beta_schedule(const std::string& name, double beta,
                                                 int64_t total_epochs);

}  // namespace hcl::loss
