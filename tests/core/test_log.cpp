// Tests of the logging set-up: format with rank tag, rank filtering, per-rank file, levels.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "core/check.h"
#include "core/log.h"

namespace {

// Captures what the console sink writes to std::clog while alive.
class ClogCapture {
 public:
  ClogCapture() : previous_(std::clog.rdbuf(buffer_.rdbuf())) {}
  ~ClogCapture() { std::clog.rdbuf(previous_); }
  std::string text() const { return buffer_.str(); }

 private:
  std::stringstream buffer_;
  std::streambuf* previous_;
};

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             ("hcl_test_log_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class Log : public ::testing::Test {
 protected:
  void TearDown() override { hcl::log::init({0, 1, hcl::log::Severity::warning, ""}); }
};

TEST_F(Log, RankZeroPrintsInfoWithTimestampAndRankTag) {
  ClogCapture capture;
  hcl::log::init({0, 8, hcl::log::Severity::info, ""});
  HCL_LOG(info) << "hello from the test";
  HCL_LOG(debug) << "hidden debug";
  hcl::log::flush();
  const std::string text = capture.text();
  const std::regex line(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[rank 0/8\] info: hello from the test)");
  EXPECT_TRUE(std::regex_search(text, line)) << text;
  EXPECT_EQ(text.find("hidden debug"), std::string::npos) << text;
}

TEST_F(Log, OtherRanksPrintOnlyWarningsAndErrors) {
  ClogCapture capture;
  hcl::log::init({3, 8, hcl::log::Severity::info, ""});
  HCL_LOG(info) << "info from rank three";
  HCL_LOG(warning) << "warning from rank three";
  HCL_LOG(error) << "error from rank three";
  hcl::log::flush();
  const std::string text = capture.text();
  EXPECT_EQ(text.find("info from rank three"), std::string::npos) << text;
  EXPECT_NE(text.find("[rank 3/8] warning: warning from rank three"), std::string::npos) << text;
  EXPECT_NE(text.find("[rank 3/8] error: error from rank three"), std::string::npos) << text;
}

TEST_F(Log, PerRankFileGetsThatRanksRecordsAtTheLevel) {
  const auto dir = fresh_dir("file");
  {
    ClogCapture capture;
    hcl::log::init({2, 4, hcl::log::Severity::debug, dir.string()});
    HCL_LOG(debug) << "debug line in file";
    HCL_LOG(trace) << "trace line not in file";
    hcl::log::init({0, 1, hcl::log::Severity::warning, ""});  // closes the file sink
  }
  const std::string text = read_file(dir / "log.rank2.txt");
  EXPECT_NE(text.find("[rank 2/4] debug: debug line in file"), std::string::npos) << text;
  EXPECT_EQ(text.find("trace line not in file"), std::string::npos) << text;
  std::filesystem::remove_all(dir);
}

TEST_F(Log, ParsesSeverityNamesAndRejectsOthers) {
  EXPECT_EQ(hcl::parse<hcl::log::Severity>("log-level", "debug"), hcl::log::Severity::debug);
  EXPECT_EQ(hcl::parse<hcl::log::Severity>("log-level", "error"), hcl::log::Severity::error);
  try {
    hcl::parse<hcl::log::Severity>("log-level", "loud");
    FAIL() << "no exception";
  } catch (const hcl::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'loud'"), std::string::npos);
  }
}

}  // namespace
