// Checkpoint files: "HCLCKPT1", payload length, CRC-32, then a LibTorch archive.
#include "persist/checkpoint.h"

#include <zlib.h>


#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>

#include "core/atomic_file.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fault_injection.h"

namespace hcl::persist {
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

// What the planned fault (HCL_FAULT) does to the checkpoint file being written, once `after` bytes
// are on disk: nothing, kill the process (a crash in mid-write), or fail the write as a full disk
// would.
struct PlannedFault {
  enum class Action { None, Kill, Fail };
  Action action = Action::None;
  int64_t after = 0;
};

// The fault planned for the next checkpoint file this process writes (counted from 1).
PlannedFault planned_fault() {
  static std::atomic<int64_t> writes{0};
  const FaultPlan& fault = fault_plan();
  const int64_t write = ++writes;
  if (write != fault.write) return {};
  if (fault.kind == FaultPlan::Kind::KillInCheckpoint) return {PlannedFault::Action::Kill, fault.byte};
  if (fault.kind == FaultPlan::Kind::FailInCheckpoint) return {PlannedFault::Action::Fail, fault.byte};
  return {};
}

// Writes the checkpoint's bytes into the atomic write's sink, with the planned fault.
class FaultyWriter {
 public:
  FaultyWriter(FileSink& sink, PlannedFault fault) : sink_(sink), fault_(fault) {}

  void write(const char* data, size_t size) {
    if (fault_.action != PlannedFault::Action::None && static_cast<int64_t>(size) >= fault_.after) {
      sink_.write(data, static_cast<size_t>(fault_.after));
      if (fault_.action == PlannedFault::Action::Kill) {
        sink_.sync();
        ::raise(SIGKILL);
      }
      sink_.fail(ENOSPC);
    }
    sink_.write(data, size);
    fault_.after -= static_cast<int64_t>(size);
  }

 private:
  FileSink& sink_;
  PlannedFault fault_;
};

}  // namespace

namespace {

// Copies tensors so that the copies outlive later in-place updates of the originals: CUDA tensors
// into pinned host memory without blocking (finish() then waits once), CPU tensors cloned.
class HostCopier {
 public:
  torch::Tensor operator()(const torch::Tensor& t) {
    if (!t.defined()) return t;
    const torch::Tensor source = t.detach();
    if (!source.is_cuda()) return source.clone();
    torch::Tensor host = torch::empty_like(source, source.options().device(torch::kCPU).pinned_memory(true));
    host.copy_(source, /*non_blocking=*/true);
    device_ = source.device();
    return host;
  }
  void finish() const {
    if (device_.has_value()) synchronize_device(*device_);
  }

 private:
  std::optional<torch::Device> device_;
};

// A new optimizer of LibTorch's type `Base` over the same parameter groups (same options, same
// parameter objects: the file names them by identity) with deep copies of `live`'s state.
template <typename Base, typename State, typename Options>
std::shared_ptr<torch::optim::Optimizer> copy_optimizer(Base& live, const std::function<void(State&)>& copy_tensors) {
  auto result = std::make_shared<Base>(live.param_groups(), static_cast<const Options&>(live.defaults()));
  for (const auto& item : live.state()) {
    auto state = std::make_unique<State>(static_cast<const State&>(*item.second));
    copy_tensors(*state);
    result->state()[item.first] = std::move(state);
  }
  return result;
}

std::shared_ptr<torch::optim::Optimizer> copy_optimizer(torch::optim::Optimizer& live, HostCopier& copy) {
  using namespace torch::optim;
  if (auto* adam = dynamic_cast<Adam*>(&live))
    return copy_optimizer<Adam, AdamParamState, AdamOptions>(*adam, [&](AdamParamState& s) {
      s.exp_avg(copy(s.exp_avg())).exp_avg_sq(copy(s.exp_avg_sq())).max_exp_avg_sq(copy(s.max_exp_avg_sq()));
    });
  if (auto* sgd = dynamic_cast<SGD*>(&live))
    return copy_optimizer<SGD, SGDParamState, SGDOptions>(
        *sgd, [&](SGDParamState& s) { s.momentum_buffer(copy(s.momentum_buffer())); });
  throw InternalError("snapshot_checkpoint: an optimizer without Adam's or SGD's state layout");
}

// The optimizer itself, not owned (a synchronous save writes it as it is).
std::shared_ptr<torch::optim::Optimizer> borrowed(torch::optim::Optimizer* optimizer) {
  return optimizer == nullptr ? nullptr : std::shared_ptr<torch::optim::Optimizer>(optimizer, [](auto*) {});
}

// The archive bytes of `state` (LibTorch's format).
std::string serialise(const CheckpointState& state) {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_archive;
  for (const auto& [name, value] : state.parameters) model_archive.write(name, value);
  for (const auto& [name, value] : state.buffers) model_archive.write(name, value, /*is_buffer=*/true);
  archive.write("model", model_archive);
  if (state.optimizer != nullptr) {
    torch::serialize::OutputArchive optimizer_archive;
    state.optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  archive.write("config", c10::IValue(state.config.dump()));
  const TrainPosition& p = state.position;
  archive.write("position", c10::IValue(std::vector<int64_t>{p.epoch, p.step, p.global_step}));
  if (state.global_batch > 0) archive.write("global-batch", c10::IValue(state.global_batch));
  if (!state.run_id.empty()) archive.write("run-id", c10::IValue(state.run_id));
  std::string payload;
  archive.save_to([&](const void* data, size_t size) -> size_t {
    payload.append(static_cast<const char*>(data), size);
    return size;
  });
  return payload;
}

}  // namespace

CheckpointState snapshot_checkpoint(torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                                    const TrainPosition& position, const nlohmann::json& config,
                                    int64_t global_batch, const std::string& run_id) {
  torch::NoGradGuard no_grad;
  HostCopier copy;
  CheckpointState state{{}, {}, nullptr, position, config, global_batch, run_id};
  for (const auto& p : model.named_parameters()) state.parameters.emplace_back(p.key(), copy(p.value()));
  for (const auto& b : model.named_buffers()) state.buffers.emplace_back(b.key(), copy(b.value()));
  if (optimizer != nullptr) state.optimizer = copy_optimizer(*optimizer, copy);
  copy.finish();
  return state;
}

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const TrainPosition& position,
                     const nlohmann::json& config, int64_t global_batch, const std::string& run_id) {
  CheckpointState state{{}, {}, borrowed(optimizer), position, config, global_batch, run_id};
  for (const auto& p : model.named_parameters()) state.parameters.emplace_back(p.key(), p.value().detach().cpu());
  for (const auto& b : model.named_buffers()) state.buffers.emplace_back(b.key(), b.value().cpu());
  write_checkpoint(path, state);
}

void write_checkpoint(const std::string& path, const CheckpointState& state) {
  const std::string payload = serialise(state);
  const uint64_t length = payload.size(), crc = crc_of(payload);
  if (fault_plan().kind == FaultPlan::Kind::SlowCheckpoint)
    std::this_thread::sleep_for(std::chrono::milliseconds(fault_plan().ms));
  // A failed write leaves no temporary file behind (it would keep a full disk full).
  write_file_atomically(path, [&](FileSink& sink) {
    FaultyWriter file(sink, planned_fault());
    file.write(kMagic, 8);
    file.write(reinterpret_cast<const char*>(&length), 8);
    file.write(reinterpret_cast<const char*>(&crc), 8);
    file.write(payload.data(), payload.size());
  }, {"checkpoint "});
}

namespace {
Checkpoint header_of(torch::serialize::InputArchive& archive, const std::string& path) {
  Checkpoint c;
  c10::IValue config, position;
  try {
    archive.read("config", config);
    archive.read("position", position);
    c.config = nlohmann::json::parse(config.toStringRef());
    HCL_REQUIRE(c.config.is_object(), "checkpoint ", path, ": its configuration is not a JSON object");
    const auto p = position.toIntVector();
    c.position = {p.at(0), p.at(1), p.at(2)};
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // c10, JSON or a short position: not what hcl-train writes
    const std::string what = e.what();
    throw Error("checkpoint " + path + ": no configuration and position in it (" + what.substr(0, what.find('\n')) + ")");
  }
  c10::IValue global_batch;  // absent from older checkpoints: unknown
  if (archive.try_read("global-batch", global_batch)) c.global_batch = global_batch.toInt();
  c10::IValue run_id;  // absent from older checkpoints and from tools' files
  if (archive.try_read("run-id", run_id)) c.run_id = run_id.toStringRef();
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
                           torch::optim::Optimizer* optimizer,
                           const std::function<void(const Checkpoint&)>& check) {
  torch::serialize::InputArchive archive;
  // Tensors (optimizer state too) land on the model's device.
  const auto params = model.parameters();
  load_archive(path, archive, params.empty() ? c10::optional<torch::Device>() : params.front().device());
  Checkpoint c = header_of(archive, path);
  if (check) check(c);
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

}  // namespace hcl::persist
