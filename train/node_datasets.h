// Loading once for many ranks. In-memory datasets once per node: the node's leader reads the
// files and copies images and labels into node-shared memory (dist/node_shared_buffer.h); every
// rank of the node, the leader included, then reads that one copy, so memory for data no longer
// grows with the ranks per node. Image-folder indexes once per job: rank 0 lists the folder and
// sends the index to the others. data/ knows nothing of this (it stays free of dist/); the results
// are what data::load_dataset and data::index_image_folder return.
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

// An image folder's index made once per job: the group's leader (rank 0 of the job) scans the
// folder, or reads its cached index, and the others receive it; so a folder of a million files on a
// shared file system is listed once, not once per rank. Collective over `job`; an error on the
// leader is thrown on every rank.
data::ImageIndex index_once_per_job(const dist::NodeComm& job, const std::string& root, const std::string& split,
                                    const std::string& cache_dir);
// That as a data::FolderLoadOptions::indexer (`job` must outlive it).
data::FolderIndexer index_once_per_job(const dist::NodeComm& job);

// How the programs of hcl (hcl-train, hcl-eval) load the splits of a job's dataset: an in-memory
// format once per node into shared memory (`node_shared`; else once per rank), an image folder with
// its index made once per job and its images decoded on demand with `folder`'s options. Made on
// every rank (collective: it forms the node and job groups); so is each load. Not movable: the
// folder indexer holds the job group.
class JobDatasets {
 public:
  JobDatasets(data::DatasetKind kind, std::string dir, data::FolderLoadOptions folder, bool node_shared);
  JobDatasets(const JobDatasets&) = delete;
  JobDatasets& operator=(const JobDatasets&) = delete;

  data::Dataset load(const std::string& split) const;

 private:
  dist::NodeComm node_, job_;
  data::DatasetKind kind_;
  std::string dir_;
  data::FolderLoadOptions folder_;
  bool node_shared_;
};

}  // namespace hcl::train
