// load_once_per_node: the leader loads, copies into node-shared memory, frees its own copy; every
// rank wraps the shared memory as tensors.
#include "train/node_datasets.h"

#include <cstring>
#include <exception>
#include <memory>

#include "core/check.h"

namespace hcl::train {
namespace {

// What the other ranks need to know of the leader's dataset before the data itself.
struct Shape {
  int64_t images = 0, channels = 0, height = 0, width = 0, num_classes = 0;
  int64_t image_bytes() const { return images * channels * height * width; }
  int64_t label_bytes() const { return images * static_cast<int64_t>(sizeof(int64_t)); }
};

// Runs `make` on the leader; every rank learns the outcome (the error is thrown on every rank).
template <typename T>
T on_leader(const dist::NodeComm& group, const std::function<T()>& make) {
  T made{};
  std::exception_ptr failure;
  std::string problem;
  if (group.is_leader()) {
    try {
      made = make();
    } catch (const std::exception& e) {
      failure = std::current_exception();
      problem = e.what()[0] != '\0' ? e.what() : "unknown error";
    } catch (...) {
      failure = std::current_exception();
      problem = "unknown error";
    }
  }
  try {
    group.agree(problem);
  } catch (const Error&) {
    if (failure) std::rethrow_exception(failure);  // the leader keeps its error's type
    throw;
  }
  return made;
}

// Labels first (8-byte aligned at the start of the mapping), then the images.
void copy_into(const data::Dataset& d, const Shape& shape, void* shared) {
  const torch::Tensor labels = d.labels.to(torch::kLong).contiguous();
  const torch::Tensor images = d.images.contiguous();
  HCL_ASSERT(labels.numel() == shape.images && images.numel() == shape.image_bytes(), "dataset ", d.name);
  if (shape.images == 0) return;
  auto* bytes = static_cast<uint8_t*>(shared);
  std::memcpy(bytes, labels.data_ptr(), static_cast<size_t>(shape.label_bytes()));
  std::memcpy(bytes + shape.label_bytes(), images.data_ptr(), static_cast<size_t>(shape.image_bytes()));
}

}  // namespace

data::Dataset load_once_per_node(const dist::NodeComm& node, const std::function<data::Dataset()>& load) {
  if (node.size() == 1) return load();
  data::Dataset d = on_leader(node, load);
  Shape shape;
  if (node.is_leader()) {
    HCL_ASSERT(d.images.defined() && d.images.dim() == 4 && d.images.scalar_type() == torch::kUInt8, d.name);
    shape = {d.size(), d.channels(), d.height(), d.width(), d.num_classes};
  }
  node.broadcast(&shape, sizeof shape);
  node.broadcast(d.name);
  const int64_t bytes = shape.label_bytes() + shape.image_bytes();
  std::shared_ptr<dist::NodeSharedBuffer> shared;
  try {
    shared = std::make_shared<dist::NodeSharedBuffer>(dist::NodeSharedBuffer::allocate(node, static_cast<size_t>(bytes)));
  } catch (const Error& e) {  // the same on every rank of the node
    throw Error(detail::concat("dataset ", d.name, ": ", e.what(), "; or hold one copy per rank with --node-shared-data false"));
  }
  if (node.is_leader()) {
    copy_into(d, shape, shared->data());
    d.images = torch::Tensor();  // the private copy goes now, not at the end of loading
    d.labels = torch::Tensor();
  }
  node.barrier();  // the leader has written everything
  auto* base = static_cast<uint8_t*>(shared->data());
  const auto keep_alive = [shared](void*) {};
  d.labels = torch::from_blob(base, {shape.images}, keep_alive, torch::kLong);
  d.images = torch::from_blob(base + shape.label_bytes(), {shape.images, shape.channels, shape.height, shape.width},
                              keep_alive, torch::kUInt8);
  d.num_classes = shape.num_classes;
  return d;
}

data::Dataset load_dataset_once_per_node(const dist::NodeComm& node, data::DatasetKind kind, const std::string& dir,
                                         const std::string& split) {
  return load_once_per_node(node, [&] { return data::load_dataset(kind, dir, split); });
}

data::ImageIndex index_once_per_job(const dist::NodeComm& job, const std::string& root, const std::string& split,
                                    const std::string& cache_dir) {
  const std::function<data::ImageIndex()> index = [&] { return data::index_image_folder(root, split, cache_dir); };
  if (job.size() == 1) return index();
  data::ImageIndex made = on_leader(job, index);
  std::string text = job.is_leader() ? data::serialize_index(made) : std::string();
  int from_cache = made.from_cache ? 1 : 0;
  job.broadcast(text);
  job.broadcast(&from_cache, sizeof from_cache);
  if (job.is_leader()) return made;
  data::ImageIndex received = data::parse_index(text);
  received.from_cache = from_cache != 0;
  return received;
}

data::FolderIndexer index_once_per_job(const dist::NodeComm& job) {
  return [&job](const std::string& root, const std::string& split, const std::string& cache_dir) {
    return index_once_per_job(job, root, split, cache_dir);
  };
}

JobDatasets::JobDatasets(data::DatasetKind kind, std::string dir, data::FolderLoadOptions folder, bool node_shared)
    : node_(dist::NodeComm::of_this_node()),
      job_(dist::NodeComm::whole_job()),
      kind_(kind),
      dir_(std::move(dir)),
      folder_(std::move(folder)),
      node_shared_(node_shared && kind != data::DatasetKind::ImageFolder) {
  folder_.indexer = index_once_per_job(job_);
}

data::Dataset JobDatasets::load(const std::string& split) const {
  return node_shared_ ? load_dataset_once_per_node(node_, kind_, dir_, split)
                      : data::load_dataset(kind_, dir_, split, folder_);
}

}  // namespace hcl::train
