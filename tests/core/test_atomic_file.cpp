// write_file_atomically: the target holds the old bytes or all the new ones, never a part, and no
// temporary file is left after a success or a failure; errors name the label, the file and the stage.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <unistd.h>
#include <cstring>

#include "core/atomic_file.h"
#include "core/check.h"
#include "tests/support/errors.h"

namespace hcl {
namespace {

namespace fs = std::filesystem;
using testing::error_of;

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

fs::path fresh_folder(const std::string& name) {
  const fs::path folder = fs::temp_directory_path() / ("hcl-atomic-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(folder);
  fs::create_directories(folder);
  return folder;
}

TEST(AtomicFile, WritesAndReplacesWholeFilesLeavingNoTemporary) {
  const fs::path folder = fresh_folder("write");
  const std::string file = (folder / "a.json").string();
  write_file_atomically(file, std::string("first"));
  EXPECT_EQ(read(file), "first");
  write_file_atomically(file, [](FileSink& sink) {
    sink.write("sec", 3);
    sink.write(std::string_view("ond"));
  });
  EXPECT_EQ(read(file), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(folder), fs::directory_iterator()), 1);
  fs::remove_all(folder);
}

TEST(AtomicFile, AFailureKeepsTheOldFileAndRemovesTheTemporary) {
  const fs::path folder = fresh_folder("fail");
  const std::string file = (folder / "checkpoint.pt").string();
  write_file_atomically(file, std::string("old"));
  const std::string message = error_of([&] {
    write_file_atomically(file, [](FileSink& sink) {
      sink.write(std::string_view("half of it"));
      sink.fail(ENOSPC);
    }, {"checkpoint ", ".tmp"});
  });
  EXPECT_EQ(message, "checkpoint " + file + ".tmp: write failed: " + std::strerror(ENOSPC));
  EXPECT_THROW(write_file_atomically(file, [](FileSink&) { throw std::runtime_error("serialising failed"); }),
               std::runtime_error);
  EXPECT_EQ(read(file), "old");
  EXPECT_EQ(std::distance(fs::directory_iterator(folder), fs::directory_iterator()), 1);
  fs::remove_all(folder);
}

TEST(AtomicFile, AMissingFolderIsAnErrorNamingTheFile) {
  const std::string file = (fresh_folder("missing") / "no" / "such" / "x.json").string();
  EXPECT_EQ(error_of([&] { write_file_atomically(file, std::string("x"), {"--out: ", ".tmp"}); }),
            "--out: " + file + ".tmp: cannot create: " + std::strerror(ENOENT));
}

}  // namespace
}  // namespace hcl
