// Command-line options of the benchmarks: "--name value" pairs, each name bound to a variable.
// An unknown name, a missing value or a value that does not parse is an hcl::Error naming it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "core/check.h"

namespace hcl::bench {

class Flags {
 public:
  Flags& add(const std::string& name, int64_t& target) {
    return bind(name, [&target, name](const std::string& v) { target = parse<int64_t>(name, v); });
  }
  Flags& add(const std::string& name, int& target) {
    return bind(name, [&target, name](const std::string& v) { target = static_cast<int>(parse<int64_t>(name, v)); });
  }
  Flags& add(const std::string& name, double& target) {
    return bind(name, [&target, name](const std::string& v) { target = parse<double>(name, v); });
  }
  Flags& add(const std::string& name, std::string& target) {
    return bind(name, [&target](const std::string& v) { target = v; });
  }

  // Sets the bound variables from argv[1..argc).
  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; i += 2) {
      const std::string name = argv[i];
      const auto setter = setters_.find(name);
      HCL_REQUIRE(setter != setters_.end(), "unknown option ", name);
      HCL_REQUIRE(i + 1 < argc, name, ": missing value");
      setter->second(argv[i + 1]);
    }
  }

 private:
  Flags& bind(const std::string& name, std::function<void(const std::string&)> setter) {
    setters_["--" + name] = std::move(setter);
    return *this;
  }

  template <typename T>
  static T parse(const std::string& name, const std::string& text) {
    size_t used = 0;
    T value{};
    try {
      if constexpr (std::is_same_v<T, double>) value = std::stod(text, &used);
      else value = std::stoll(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HCL_REQUIRE(used == text.size() && !text.empty(), "--", name, ": cannot read '", text, "' as a number");
    return value;
  }

  std::map<std::string, std::function<void(const std::string&)>> setters_;
};

}  // namespace hcl::bench
