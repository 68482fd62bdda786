// The trainer's configuration: every option with its default (the reference's where it has one).
// launch/ fills it from the command line and config files; validate() rejects bad values. Options
// with a fixed set of values are enums whose names come from their tables (core/named_enum.h),
// written beside each enum in its own layer.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/log.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "loss/beta_schedule.h"
#include "loss/objective.h"
#include "model/contrastive_model.h"
#include "model/encoder.h"
#include "train/global_objective.h"
#include "train/optim.h"
#include "train/step.h"

namespace hcl::train {

// Decode workers per rank when --workers is 0: SLURM_CPUS_PER_TASK when Slurm set it (srun
// --cpus-per-task), else the CPUs this process may run on (its affinity: a cgroup cpuset, a
// container's --cpuset-cpus, mpirun's binding) shared by the `local_ranks` ranks of its node.
int default_decode_workers(int local_ranks);

struct TrainConfig {
  // data
  data::DatasetKind dataset = data::DatasetKind::FashionMnist;
  std::string data_dir;  // "": the dataset's default folder
  std::string train_split = "train";
  double crop_scale_min = 0.08;
  double blur_p = 0.0;
  int64_t crop_size = 0;  // 0: the images' own size (image-folder: 224)
  int64_t workers = 0;    // 0: default_decode_workers
  bool skip_bad_images = false;
  int64_t max_image_pixels = data::kDefaultMaxImagePixels;
  // model
  model::Arch arch = model::Arch::ResNet18;
  model::Stem stem = model::Stem::Cifar;
  int64_t projection_dim = 128;
  int64_t head_hidden = 512;
  bool sync_bn = true;
  ViewForward view_forward = ViewForward::PerView;
  // objective
  loss::Estimator estimator = loss::Estimator::Hard;
  double temperature = 0.5;
  double tau_plus = 0.1;
  double beta = 1.0;
  loss::BetaScheduleKind beta_schedule = loss::BetaScheduleKind::Constant;
  int64_t column_chunk = 0;
  ObjectiveComm objective_comm = ObjectiveComm::AllGather;
  // optimisation
  int64_t batch_size = 256;
  int64_t global_batch = 0;  // images per step over all ranks; 0 until resolve_batch (batch-size x ranks)
  int64_t accumulate = 1;
  int64_t epochs = 100;
  int64_t max_steps = 0;
  OptimizerKind optimizer = OptimizerKind::Adam;
  double lr = 1e-3;
  double weight_decay = 1e-6;
  double momentum = 0.9;
  double warmup_epochs = 0;
  LrSchedule lr_schedule = LrSchedule::Constant;
  // runtime
  Precision precision = Precision::Fp32;
  DeviceChoice device = DeviceChoice::Auto;
  dist::BackendChoice backend = dist::BackendChoice::Auto;
  int64_t collective_timeout = 300;
  int64_t bucket_mb = 25;
  CudaGraphMode cuda_graph = CudaGraphMode::Auto;
  bool finite_check = true;
  int64_t max_skipped_steps = 10;
  int64_t threads = 0;
  bool node_shared_data = true;
  int64_t seed = 0;
  // monitoring and output
  int64_t log_interval = 10;
  double eval_interval = 1;
  int64_t eval_min_seconds = 60;
  int64_t knn_k = 200;
  double knn_temperature = 0.5;
  int64_t knn_bank_size = 0;
  int64_t knn_test_size = 0;
  double checkpoint_interval = 1;
  int64_t checkpoint_min_seconds = 60;
  std::string out = "runs/hcl";
  std::string resume;
  bool force = false;
  log::Severity log_level = log::Severity::info;
  bool log_file = false;

  // Calls visit(name, field, help) for every option, in --help order. The one list of options:
  // the command line, config files, JSON and the checkpoint all go through it. For an enum field
  // `help` is the lead of the text before the choices (help_with_choices in core/named_enum.h).
  template <typename Self, typename Visit>
  static void visit_fields(Self& c, Visit&& visit) {
    visit("dataset", c.dataset, "");
    visit("data-dir", c.data_dir, "dataset folder (empty: the dataset's default)");
    visit("train-split", c.train_split, "split to pretrain on (stl10: train+unlabeled, unlabeled)");
    visit("crop-scale-min", c.crop_scale_min, "smallest random crop, as a fraction of the image");
    visit("blur-p", c.blur_p, "probability of Gaussian blur");
    visit("crop-size", c.crop_size,
          "side of the augmented views in pixels (0: the images' own size; image-folder: 224)");
    visit("workers", c.workers,
          "image-folder decode threads per rank (0: SLURM_CPUS_PER_TASK, else the CPUs this rank may use / the "
          "ranks of its node)");
    visit("skip-bad-images", c.skip_bad_images,
          "image-folder: replace an unreadable or corrupt image by the next one (each logged and counted) "
          "instead of stopping with an error naming the file");
    visit("max-image-pixels", c.max_image_pixels,
          "image-folder: the most pixels one image may decode to (a JPEG is decoded at a reduced scale to fit; "
          "a larger PNG is a bad image, refused from its header before any memory is taken; 0: no limit)");
    visit("arch", c.arch, "encoder");
    visit("stem", c.stem, "");
    visit("projection-dim", c.projection_dim, "output dimension of the projection head");
    visit("head-hidden", c.head_hidden, "hidden width of the projection head");
    visit("sync-bn", c.sync_bn, "BatchNorm statistics over all ranks (W x B equals 1 x WB)");
    visit("view-forward", c.view_forward, "");
    visit("estimator", c.estimator, "");
    visit("temperature", c.temperature, "temperature t of the scores");
    visit("tau-plus", c.tau_plus, "class prior tau+ in [0, 1)");
    visit("beta", c.beta, "hardness beta >= 0");
    visit("beta-schedule", c.beta_schedule, "");
    visit("column-chunk", c.column_chunk, "objective column chunk to bound memory (0: none)");
    visit("objective-comm", c.objective_comm, "how the objective meets the other ranks' views");
    visit("global-batch", c.global_batch,
          "images per step over all ranks, the objective's batch: each rank takes global-batch / ranks, which "
          "must be a whole number (0: --batch-size per rank decides; the log and config.json give both)");
    visit("batch-size", c.batch_size, "images per rank per step (global batch: x ranks); --global-batch sets it");
    visit("accumulate", c.accumulate, "micro-batches per step (divides batch-size)");
    visit("epochs", c.epochs, "epochs of pretraining");
    visit("max-steps", c.max_steps, "stop after this many steps (0: no limit)");
    visit("optimizer", c.optimizer, "");
    visit("lr", c.lr, "learning rate (lars: base learning rate)");
    visit("weight-decay", c.weight_decay, "weight decay");
    visit("momentum", c.momentum, "momentum of sgd and lars");
    visit("warmup-epochs", c.warmup_epochs, "linear learning-rate warm-up, in epochs");
    visit("lr-schedule", c.lr_schedule, "");
    visit("precision", c.precision, "");
    visit("device", c.device, "");
    visit("backend", c.backend, "collectives");
    visit("collective-timeout", c.collective_timeout, "seconds before a collective that does not complete ends the job");
    visit("bucket-mb", c.bucket_mb, "gradient all-reduce bucket size in MB");
    visit("cuda-graph", c.cuda_graph, "replay each step from one CUDA graph after 3 eager steps");
    visit("finite-check", c.finite_check,
          "skip steps with non-finite loss or gradients on any rank (decided on the device, counted one step late)");
    visit("max-skipped-steps", c.max_skipped_steps,
          "stop after this many consecutive skipped steps (known one step late: the run stops one step after)");
    visit("threads", c.threads, "CPU threads per rank (0: LibTorch's default)");
    visit("node-shared-data", c.node_shared_data,
          "hold in-memory datasets once per node in shared memory (/dev/shm), read by all its ranks (false: one copy "
          "per rank)");
    visit("seed", c.seed, "seed of initialisation, sampling and augmentation");
    visit("log-interval", c.log_interval, "steps between progress lines and metrics records");
    visit("eval-interval", c.eval_interval,
          "epochs between kNN evaluations (0: start and end only), at most one per --eval-min-seconds");
    visit("eval-min-seconds", c.eval_min_seconds,
          "wall-clock seconds at least between two kNN evaluations during training (0: no floor; the ranks agree "
          "on the clock every 10 steps): a kNN pass over CIFAR-10 costs about half of a fast GPU's epoch");
    visit("knn-k", c.knn_k, "neighbours of the kNN monitor");
    visit("knn-temperature", c.knn_temperature, "temperature of the kNN weights exp(sim / t)");
    visit("knn-bank-size", c.knn_bank_size, "train images in the kNN memory bank (0: all)");
    visit("knn-test-size", c.knn_test_size, "test images scored by the kNN monitor (0: all)");
    visit("checkpoint-interval", c.checkpoint_interval,
          "epochs between checkpoints (0: only at the end and on a stop signal), at most one per "
          "--checkpoint-min-seconds; written by a background thread from a snapshot");
    visit("checkpoint-min-seconds", c.checkpoint_min_seconds,
          "wall-clock seconds at least between two interval checkpoints (0: no floor; agreed every 10 steps)");
    visit("out", c.out, "output folder: config, metrics.jsonl, checkpoints, logs");
    visit("resume", c.resume, "checkpoint file to continue from, or auto: the --out folder's checkpoint if any, else a fresh start (kept on resume: objective, lr schedule, optimizer settings, seed, augmentation, global batch)");
    visit("force", c.force, "use an output folder that holds another run");
    visit("log-level", c.log_level, "");
    visit("log-file", c.log_file, "also write a log file per rank in the output folder");
  }

  // Makes --global-batch and --batch-size agree for a job of `world` ranks. With --global-batch G the
  // per-rank batch is G / world (world must divide G; a --batch-size also given must equal it);
  // without, G = --batch-size x world. Throws hcl::Error naming the option (bad input: exit 2).
  void resolve_batch(int world, bool batch_size_given);
  // Throws hcl::Error "--option: problem" naming the first invalid value.
  void validate() const;
  // Throws hcl::Error "--option: problem" when this machine cannot run the configuration: --device
  // cuda without a CUDA device; --precision bf16, --cuda-graph on or --backend nccl where the device
  // is the CPU. Called before anything is loaded or written (a bad environment is bad input).
  void check_environment() const;
  nlohmann::json to_json() const;
  // Unknown keys are errors.
  static TrainConfig from_json(const nlohmann::json& j);
  // The options that must match to continue a run from a checkpoint (architecture, dimensions).
  nlohmann::json model_identity() const;
  // How image folders are read: crop size, decode workers (--workers, or default_decode_workers),
  // bad images, and the index cache in the run's folder.
  data::FolderLoadOptions folder_options(int local_ranks) const;
  // The model this configuration describes (encoder, stem, head; input channels of its dataset),
  // with the given normalisation layers (BatchNorm by default): model::ContrastiveModel builds it.
  model::ModelOptions model_options(const model::NormFactory& norm = {}) const;
};

}  // namespace hcl::train
