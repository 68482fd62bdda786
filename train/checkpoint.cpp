// Checkpoint files: "HCLCKPT1", payload length, CRC-32, then a LibTorch archive.
#include "train/checkpoint.h"

#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <csignal>
#include <fcntl.h>
#include <unistd.h>

#include "core/check.h"
#include "train/fault_injection.h"

namespace hcl::train {
namespace {

constexpr char kMagic[8] = {'H', 'C', 'L', 'C', 'K', 'P', 'T', '1'};
constexpr size_t kHeader = 8 + 8 + 8;

uint32_t crc_of(const std::string& bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const size_t chunk = 1u << 30;
  for (size_t off = 0; off < bytes.size(); off += chunk)
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + off),
                static_cast<uInt>(std::min(chunk, bytes.size() - off)));
  return static_cast<uint32_t>(crc);
}

// The archive bytes of a checkpoint file, after checking magic, length and checksum.
std::string read_payload(const std::string& path) {
  HCL_REQUIRE(std::filesystem::is_regular_file(path), "checkpoint ", path, ": no such file");
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  HCL_REQUIRE(bytes.size() >= kHeader && std::memcmp(bytes.data(), kMagic, 8) == 0, "checkpoint ",
              path, ": not an hcl checkpoint (bad magic)");
  uint64_t length = 0, crc = 0;
  std::memcpy(&length, bytes.data() + 8, 8);
  std::memcpy(&crc, bytes.data() + 16, 8);
  HCL_REQUIRE(bytes.size() - kHeader == length, "checkpoint ", path, ": truncated (",
              bytes.size() - kHeader, " of ", length, " bytes)");
  std::string payload = bytes.substr(kHeader);
  HCL_REQUIRE(crc_of(payload) == crc, "checkpoint ", path, ": corrupt (checksum mismatch)");
  return payload;
}

// Writes a file through a descriptor; with HCL_FAULT=kill-in-checkpoint, the process kills itself
// once the planned number of bytes is on disk (the reliability tests' crash in mid-write).
class FileWriter {
 public:
  FileWriter(int fd, std::string path, int64_t kill_after) : fd_(fd), path_(std::move(path)), kill_after_(kill_after) {}

  void write(const char* data, size_t size) {
    if (kill_after_ >= 0 && static_cast<int64_t>(size) >= kill_after_) {
      write_all(data, static_cast<size_t>(kill_after_));
      ::fsync(fd_);
      ::raise(SIGKILL);
    }
    write_all(data, size);
    if (kill_after_ >= 0) kill_after_ -= static_cast<int64_t>(size);
  }

 private:
  void write_all(const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd_, data, size);
      if (n < 0) {
        ::close(fd_);
        throw Error("checkpoint " + path_ + ": write failed: " + std::strerror(errno));
      }
      data += n;
      size -= static_cast<size_t>(n);
    }
  }

  int fd_;
  std::string path_;
  int64_t kill_after_;
};

// Bytes the next checkpoint file may have before the planned kill (-1: no kill planned).
int64_t planned_kill_after() {
  static int64_t writes = 0;
  const FaultPlan& fault = fault_plan();
  ++writes;
  return fault.kind == FaultPlan::Kind::KillInCheckpoint && writes == fault.write ? fault.byte : -1;
}

}  // namespace

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const TrainPosition& position,
                     const TrainConfig& config, int64_t global_batch) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  for (const auto& p : model.named_parameters()) model_archive.write(p.key(), p.value().detach().cpu());
  for (const auto& b : model.named_buffers()) model_archive.write(b.key(), b.value().cpu(), /*is_buffer=*/true);
  archive.write("model", model_archive);
  if (optimizer != nullptr) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  archive.write("config", c10::IValue(config.to_json().dump()));
  archive.write("position", c10::IValue(std::vector<int64_t>{position.epoch, position.step, position.global_step}));
  if (global_batch > 0) archive.write("global-batch", c10::IValue(global_batch));
  std::string payload;
  archive.save_to([&](const void* data, size_t size) -> size_t {
    payload.append(static_cast<const char*>(data), size);
    return size;
  });

  const uint64_t length = payload.size(), crc = crc_of(payload);
  if (fault_plan().kind == FaultPlan::Kind::SlowCheckpoint)
    std::this_thread::sleep_for(std::chrono::milliseconds(fault_plan().ms));
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  HCL_REQUIRE(fd >= 0, "checkpoint ", tmp, ": cannot create: ", std::strerror(errno));
  // A failed write leaves no temporary file behind (it would keep a full disk full).
  try {
    FileWriter file(fd, tmp, planned_kill_after());
    file.write(kMagic, 8);
    file.write(reinterpret_cast<const char*>(&length), 8);
    file.write(reinterpret_cast<const char*>(&crc), 8);
    file.write(payload.data(), payload.size());
    if (::fsync(fd) != 0) {
      const int error = errno;
      ::close(fd);
      throw Error("checkpoint " + tmp + ": flush failed: " + std::strerror(error));
    }
    if (::close(fd) != 0) throw Error("checkpoint " + tmp + ": flush failed: " + std::strerror(errno));
    HCL_REQUIRE(std::rename(tmp.c_str(), path.c_str()) == 0, "checkpoint ", path,
                ": rename failed: ", std::strerror(errno));
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

namespace {
Checkpoint header_of(torch::serialize::InputArchive& archive, const std::string& path) {
  Checkpoint c;
  c10::IValue config, position;
  try {
    archive.read("config", config);
    archive.read("position", position);
    c.config = TrainConfig::from_json(nlohmann::json::parse(config.toStringRef()));
    const auto p = position.toIntVector();
    c.position = {p.at(0), p.at(1), p.at(2)};
  } catch (const Error& e) {
    throw Error("checkpoint " + path + ": " + e.what());
  } catch (const std::exception& e) {  // c10, JSON or a short position: not what hcl-train writes
    const std::string what = e.what();
    throw Error("checkpoint " + path + ": no configuration and position in it (" + what.substr(0, what.find('\n')) + ")");
  }
  c10::IValue global_batch;  // absent from older checkpoints: unknown
  if (archive.try_read("global-batch", global_batch)) c.global_batch = global_batch.toInt();
  return c;
}

void load_archive(const std::string& path, torch::serialize::InputArchive& archive,
                  c10::optional<torch::Device> device = c10::nullopt) {
  const std::string payload = read_payload(path);
  try {
    archive.load_from(payload.data(), payload.size(), device);
  } catch (const c10::Error& e) {
    throw Error("checkpoint " + path + ": unreadable archive (" + e.what_without_backtrace() + ")");
  }
}
}  // namespace

void check_compatible(const Checkpoint& checkpoint, const TrainConfig& expected, const std::string& path) {
  const nlohmann::json have = checkpoint.config.model_identity(), want = expected.model_identity();
  for (const auto& item : want.items())
    HCL_REQUIRE(have.at(item.key()) == item.value(), "checkpoint ", path, " is incompatible: --",
                item.key(), " is ", have.at(item.key()).dump(), " there but ", item.value().dump(), " here");
}

bool has_checkpoint_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in.gcount() == 8 && std::memcmp(magic, kMagic, 8) == 0;
}

Checkpoint read_checkpoint_header(const std::string& path) {
  torch::serialize::InputArchive archive;
  load_archive(path, archive);
  return header_of(archive, path);
}

Checkpoint load_checkpoint(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer, const TrainConfig& expected) {
  torch::serialize::InputArchive archive;
  // Tensors (optimizer state too) land on the model's device.
  const auto params = model.parameters();
  load_archive(path, archive, params.empty() ? c10::optional<torch::Device>() : params.front().device());
  Checkpoint c = header_of(archive, path);
  check_compatible(c, expected, path);
  torch::serialize::InputArchive model_archive;
  archive.read("model", model_archive);
  torch::NoGradGuard no_grad;
  try {
    for (auto& p : model.named_parameters()) {
      torch::Tensor value;
      model_archive.read(p.key(), value);
      p.value().copy_(value);
    }
    for (auto& b : model.named_buffers()) {
      torch::Tensor value;
      model_archive.read(b.key(), value, /*is_buffer=*/true);
      b.value().copy_(value);
    }
    if (optimizer != nullptr) {
      torch::serialize::InputArchive optimizer_archive;
      archive.read("optimizer", optimizer_archive);
      optimizer->load(optimizer_archive);
    }
  } catch (const c10::Error& e) {
    throw Error("checkpoint " + path + ": does not fit this model (" + e.what_without_backtrace() + ")");
  }
  return c;
}

}  // namespace hcl::train
