// In-memory datasets loaded once per node: the node's leader reads the files and copies images
// and labels into node-shared memory (dist/node_shared_buffer.h); every rank of the node, the
// leader included, then reads that one copy. Memory for data no longer grows with the ranks per
// node. data/ knows nothing of this (it stays free of dist/); the tensors are the same bytes that
// data::load_dataset returns.
#pragma once

#include <functional>
#include <string>

#include "data/dataset.h"
#include "dist/node_shared_buffer.h"

namespace hcl::train {

// Collective over `node`. The leader calls `load`; the others wait for it. Returns the dataset on
// every rank as tensors over node-shared memory (kept alive by the tensors themselves). If `load`
// throws on the leader, every rank of the node throws an hcl::Error with its message (the leader
// rethrows its own exception). A node of one rank just calls `load`.
data::Dataset load_once_per_node(const dist::NodeComm& node, const std::function<data::Dataset()>& load);

// data::load_dataset(kind, dir, split) once per node.
data::Dataset load_dataset_once_per_node(const dist::NodeComm& node, data::DatasetKind kind, const std::string& dir,
                                         const std::string& split);

}  // namespace hcl::train
