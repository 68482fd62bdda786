// Parsing of HCL_FAULT.
#include "core/fault_injection.h"

#include <cstdlib>
#include <sstream>

#include "core/check.h"

namespace hcl {
namespace {

int64_t parse_count(const std::string& text, const std::string& what) {
  size_t used = 0;
  int64_t value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  HCL_REQUIRE(used == text.size() && value >= 0, "HCL_FAULT: ", what, " must be a count >= 0, got '", text, "'");
  return value;
}

}  // namespace

FaultPlan parse_fault_plan(const std::string& text) {
  FaultPlan plan;
  if (text.empty()) return plan;
  std::istringstream in(text);
  std::string kind, field;
  std::getline(in, kind, ':');
  if (kind == "throw") plan.kind = FaultPlan::Kind::Throw;
  else if (kind == "nan-grad") plan.kind = FaultPlan::Kind::NanGrad;
  else if (kind == "kill-in-checkpoint") plan.kind = FaultPlan::Kind::KillInCheckpoint;
  else if (kind == "fail-in-checkpoint") plan.kind = FaultPlan::Kind::FailInCheckpoint;
  else if (kind == "slow-checkpoint") plan.kind = FaultPlan::Kind::SlowCheckpoint;
  else if (kind == "capture-fail") plan.kind = FaultPlan::Kind::CaptureFail;
  else throw Error("HCL_FAULT: unknown fault '" + kind + "' (expected throw, nan-grad, kill-in-checkpoint, "
                   "fail-in-checkpoint, slow-checkpoint or capture-fail)");
  bool has_step = false, has_byte = false, has_ms = false;
  while (std::getline(in, field, ':')) {
    const size_t eq = field.find('=');
    HCL_REQUIRE(eq != std::string::npos, "HCL_FAULT: expected key=value, got '", field, "'");
    const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
    if (key == "step") {
      const size_t dash = value.find('-');
      plan.first_step = parse_count(value.substr(0, dash), "step");
      plan.last_step = dash == std::string::npos ? plan.first_step : parse_count(value.substr(dash + 1), "step");
      HCL_REQUIRE(plan.first_step >= 1 && plan.last_step >= plan.first_step, "HCL_FAULT: bad step range '", value, "'");
      has_step = true;
    } else if (key == "rank") {
      plan.rank = static_cast<int>(parse_count(value, "rank"));
    } else if (key == "byte") {
      plan.byte = parse_count(value, "byte");
      has_byte = true;
    } else if (key == "ms") {
      plan.ms = parse_count(value, "ms");
      has_ms = true;
    } else if (key == "write") {
      plan.write = parse_count(value, "write");
      HCL_REQUIRE(plan.write >= 1, "HCL_FAULT: write counts from 1");
    } else {
      throw Error("HCL_FAULT: unknown key '" + key + "'");
    }
  }
  if (plan.kind == FaultPlan::Kind::KillInCheckpoint || plan.kind == FaultPlan::Kind::FailInCheckpoint)
    HCL_REQUIRE(has_byte, "HCL_FAULT: ", kind, " needs byte=N");
  else if (plan.kind == FaultPlan::Kind::SlowCheckpoint)
    HCL_REQUIRE(has_ms, "HCL_FAULT: slow-checkpoint needs ms=N");
  else if (plan.kind != FaultPlan::Kind::CaptureFail)
    HCL_REQUIRE(has_step, "HCL_FAULT: ", kind, " needs step=S or step=S-E");
  return plan;
}

namespace {
FaultPlan& plan_of_this_process() {
  static FaultPlan plan = [] {
    const char* text = std::getenv("HCL_FAULT");
    return parse_fault_plan(text == nullptr ? "" : text);
  }();
  return plan;
}
}  // namespace

const FaultPlan& fault_plan() { return plan_of_this_process(); }

ScopedFaultPlan::ScopedFaultPlan(const FaultPlan& plan) : previous_(plan_of_this_process()) {
  plan_of_this_process() = plan;
}

ScopedFaultPlan::~ScopedFaultPlan() { plan_of_this_process() = previous_; }

}  // namespace hcl
