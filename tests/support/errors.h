// Test helper: the message of the hcl::Error a call throws, and an expectation on a fragment of it
// (the message is printed when the fragment is missing).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/check.h"

namespace hcl::testing {

// The message of the hcl::Error that `call` throws; "(no error)" when it throws none.
template <typename F>
std::string error_of(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace hcl::testing

// `statement` throws an hcl::Error whose message contains `fragment`.
#define EXPECT_ERROR(statement, fragment)                                                   \
  do {                                                                                      \
    const std::string hcl_error_ = ::hcl::testing::error_of([&] { statement; });            \
    EXPECT_NE(hcl_error_.find(fragment), std::string::npos) << "message: " << hcl_error_; \
  } while (false)
