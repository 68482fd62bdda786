// Tests of loss/: golden values of the reference, the sharded and chunked forms, stability in low
// precision, edge cases, statistics, bad input, and beta schedules.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <map>

#include "core/check.h"
#include "loss/beta_schedule.h"
#include "loss/objective.h"
#include "tests/support/golden.h"
#include "core/op_counts.h"

namespace hcl::loss {
namespace {

using test::close;

ObjectiveOptions options_of(const test::GoldenCase& c) {
  return ObjectiveOptions()
      .temperature(c.temperature)
      .beta(c.beta)
      .tau_plus(c.tau_plus)
      .estimator(parse<Estimator>("estimator", c.estimator));
}

// The reference's own formula, literally (exp of scores, masks, clamp), in float64: a second,
// independent implementation to compare against on random data.
torch::Tensor reference_objective(const torch::Tensor& z1, const torch::Tensor& z2,
                                  const ObjectiveOptions& o) {
  const int64_t b = z1.size(0);
  const torch::Tensor out = torch::cat({z1, z2}, 0);
  torch::Tensor neg = torch::exp(out.mm(out.t()) / o.temperature());
  torch::Tensor mask = torch::ones({2 * b, 2 * b}, torch::kBool);
  for (int64_t i = 0; i < 2 * b; ++i) {
    mask[i][i] = false;
    mask[i][(i + b) % (2 * b)] = false;
  }
  neg = neg.masked_select(mask).view({2 * b, -1});
  torch::Tensor pos = torch::exp((z1 * z2).sum(-1) / o.temperature());
  pos = torch::cat({pos, pos}, 0);
  torch::Tensor ng;
  if (o.estimator() == Estimator::Hard) {
    const double n = 2.0 * b - 2;
    const torch::Tensor imp = (o.beta() * neg.log()).exp();
    const torch::Tensor reweight = (imp * neg).sum(-1) / imp.mean(-1);
    ng = (-o.tau_plus() * n * pos + reweight) / (1 - o.tau_plus());
    if (o.floor()) ng = torch::clamp(ng, n * std::exp(-1 / o.temperature()));
  } else {
    ng = neg.sum(-1);
  }
  return (-torch::log(pos / (pos + ng))).mean();
}

torch::Tensor random_embeddings(int64_t rows, int64_t dim, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::functional::normalize(torch::randn({rows, dim}, torch::kDouble),
                                          torch::nn::functional::NormalizeFuncOptions().dim(1));
}

struct Evaluation {
  torch::Tensor loss, grad_1, grad_2;
  ObjectiveStats stats;
};

Evaluation evaluate(const torch::Tensor& z1_in, const torch::Tensor& z2_in, const ObjectiveOptions& o) {
  torch::Tensor z1 = z1_in.detach().clone().requires_grad_(true);
  torch::Tensor z2 = z2_in.detach().clone().requires_grad_(true);
  ObjectiveResult r = contrastive_objective(z1, z2, o);
  r.loss.backward();
  return {r.loss.detach(), z1.grad(), z2.grad(), r.stats};
}

// ---- golden values -------------------------------------------------------------------------

TEST(GoldenLoss, FolderHasCases) { EXPECT_GE(test::golden_files().size(), 7u); }

void check_golden(torch::ScalarType dtype, int64_t chunk, double rtol, double grad_atol) {
  for (const auto& file : test::golden_files()) {
    const test::GoldenCase c = test::load_golden(file);
    SCOPED_TRACE(c.file + " dtype " + std::string(c10::toString(dtype)) + " chunk " +
                 std::to_string(chunk));
    const Evaluation e = evaluate(c.out_1.to(dtype), c.out_2.to(dtype), options_of(c).column_chunk(chunk));
    EXPECT_TRUE(close(e.loss, torch::tensor(c.loss, torch::kDouble), rtol));
    EXPECT_TRUE(close(e.grad_1, c.grad_out_1, rtol, grad_atol));
    EXPECT_TRUE(close(e.grad_2, c.grad_out_2, rtol, grad_atol));
    EXPECT_EQ(std::llround(e.stats.floor_fraction.item<double>() * 2 * c.batch), c.clamped_rows);
  }
}

TEST(GoldenLoss, Float64) { check_golden(torch::kDouble, 0, 1e-9, 1e-15); }
TEST(GoldenLoss, Float64Chunked) {
  for (int64_t chunk : {1, 3, 7, 64}) check_golden(torch::kDouble, chunk, 1e-9, 1e-15);
}
TEST(GoldenLoss, Float32) { check_golden(torch::kFloat, 0, 2e-5, 1e-6); }
TEST(GoldenLoss, Float32Chunked) { check_golden(torch::kFloat, 5, 2e-5, 1e-6); }

TEST(GoldenLoss, Float32OnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto& file : test::golden_files()) {
    const test::GoldenCase c = test::load_golden(file);
    SCOPED_TRACE(c.file);
    const torch::Device gpu(torch::kCUDA, 0);
    for (int64_t chunk : {0, 5}) {
      const Evaluation e = evaluate(c.out_1.to(gpu, torch::kFloat), c.out_2.to(gpu, torch::kFloat),
                                    options_of(c).column_chunk(chunk));
      EXPECT_TRUE(close(e.loss.cpu(), torch::tensor(c.loss, torch::kDouble), 2e-5));
      EXPECT_TRUE(close(e.grad_1.cpu(), c.grad_out_1, 2e-5, 1e-6));
      EXPECT_TRUE(close(e.grad_2.cpu(), c.grad_out_2, 2e-5, 1e-6));
    }
  }
}

// ---- agreement with the literal reference on random data ------------------------------------

TEST(Objective, MatchesTheLiteralReferenceOnRandomData) {
  const std::vector<ObjectiveOptions> variants = {
      ObjectiveOptions(),
      ObjectiveOptions().beta(0.0),
      ObjectiveOptions().beta(0.0).tau_plus(0.0),
      ObjectiveOptions().beta(3.0).tau_plus(0.2).temperature(0.3),
      ObjectiveOptions().tau_plus(0.5).floor(false).beta(0.5),
      ObjectiveOptions().estimator(Estimator::Easy).temperature(0.1),
  };
  for (int64_t b : {2, 5, 17}) {
    const torch::Tensor z1 = random_embeddings(b, 8, 10 + b), z2 = random_embeddings(b, 8, 20 + b);
    for (const auto& o : variants) {
      SCOPED_TRACE(::testing::Message() << "B " << b << " beta " << o.beta() << " tau+ " << o.tau_plus()
                                        << " " << name_of(o.estimator()));
      const torch::Tensor expected = reference_objective(z1, z2, o);
      if (!std::isfinite(expected.item<double>())) continue;  // no floor: D <= 0 has no log
      torch::Tensor a = z1.clone().requires_grad_(true), p = z2.clone().requires_grad_(true);
      reference_objective(a, p, o).backward();
      const Evaluation e = evaluate(z1, z2, o);
      EXPECT_TRUE(close(e.loss, expected, 1e-11));
      EXPECT_TRUE(close(e.grad_1, a.grad(), 1e-9, 1e-14));
      EXPECT_TRUE(close(e.grad_2, p.grad(), 1e-9, 1e-14));
    }
  }
}

TEST(Objective, ChunkedEqualsUnchunked) {
  const torch::Tensor z1 = random_embeddings(33, 16, 1), z2 = random_embeddings(33, 16, 2);
  for (const auto& o : {ObjectiveOptions().beta(2.0), ObjectiveOptions().estimator(Estimator::Easy),
                        ObjectiveOptions().beta(0.0)}) {
    const Evaluation whole = evaluate(z1, z2, o);
    for (int64_t chunk : {1, 2, 16, 65, 66, 1000}) {
      SCOPED_TRACE(chunk);
      const Evaluation parts = evaluate(z1, z2, ObjectiveOptions(o).column_chunk(chunk));
      EXPECT_TRUE(close(parts.loss, whole.loss, 1e-12));
      EXPECT_TRUE(close(parts.grad_1, whole.grad_1, 1e-10, 1e-15));
      EXPECT_TRUE(close(parts.grad_2, whole.grad_2, 1e-10, 1e-15));
      EXPECT_TRUE(close(parts.stats.effective_negatives, whole.stats.effective_negatives, 1e-6));
    }
  }
}

// The sharded form: the loss over all anchors is the anchor-weighted mean of the losses over any
// split of the anchors, with the same candidates (what the global-batch objective relies on).
TEST(Objective, ShardedFormSplitsAnchorsExactly) {
  const int64_t b = 6;
  const torch::Tensor z = torch::cat({random_embeddings(b, 8, 3), random_embeddings(b, 8, 4)}, 0);
  for (int64_t chunk : {0, 1, 5}) {  // chunks cut the skipped diagonals at every place
    SCOPED_TRACE(chunk);
    const ObjectiveOptions o = ObjectiveOptions().beta(1.5).column_chunk(chunk);
    torch::Tensor whole_in = z.clone().requires_grad_(true);
    const torch::Tensor whole = contrastive_objective(whole_in, whole_in, ViewLayout{b, 0, 0}, o).loss;
    whole.backward();

    torch::Tensor cand = z.clone().requires_grad_(true);
    torch::Tensor total = torch::zeros({}, torch::kDouble);
    // Anchors [0, 5) are view-0 rows only; [5, 12) straddle the two views.
    for (auto [start, count] : {std::pair<int64_t, int64_t>{0, 5}, {5, 2 * b - 5}}) {
      const torch::Tensor part = contrastive_objective(cand.narrow(0, start, count), cand, ViewLayout{b, 0, start}, o).loss;
      total = total + part * static_cast<double>(count) / (2 * b);
    }
    total.backward();
    EXPECT_TRUE(close(total, whole, 1e-12));
    EXPECT_TRUE(close(cand.grad(), whole_in.grad(), 1e-10, 1e-15));
  }
}

// The skipped columns are masked by filling diagonal views (no index tensors, no scatter or
// gather): forward and backward call the same ATen ops whatever the batch, and read nothing back
// to the host when the value check is off. The budget is on every call RecordFunction sees
// (backward's ops are nested in the autograd engine's): LibTorch 1.13 and 2.15 both record 432
// without the statistics and 542 with them; about 15% headroom. Masking is one fill
// of a diagonal view per segment (3) in forward and again in backward's recomputation; the masking
// by index it replaced called sub, ge, lt, logical_and, clamp, gather, where and scatter per
// excluded column and tile, and rebuilt the index tensors on every call.
TEST(Objective, MasksWithoutIndicesInAFixedBudgetOfOps) {
  for (const bool stats : {false, true}) {
    SCOPED_TRACE(stats ? "with statistics" : "without statistics");
    std::map<int64_t, OpCounts> by_batch;
    for (int64_t b : {8, 64}) {
      const ObjectiveOptions o = ObjectiveOptions().check_values(false).with_stats(stats);
      torch::Tensor z1 = random_embeddings(b, 16, 1).requires_grad_(true);
      torch::Tensor z2 = random_embeddings(b, 16, 2).requires_grad_(true);
      by_batch[b] = count_ops([&] { contrastive_objective(z1, z2, o).loss.backward(); });
    }
    const OpCounts& c = by_batch[64];
    EXPECT_EQ(by_batch[8].all, c.all) << "ops must not grow with the batch";
    for (const char* op : {"aten::index_select", "aten::index", "aten::scatter_", "aten::gather", "aten::arange",
                           "aten::remainder", "aten::_local_scalar_dense", "aten::item"})
      EXPECT_EQ(c.all.count(op), 0u) << op;
    EXPECT_EQ(c.all.at("aten::diagonal"), 6);  // 3 segments, in forward and in backward
    const int64_t budget = stats ? 630 : 500;
    EXPECT_LE(c.all_total(), budget);
    std::cout << "objective forward + backward (" << (stats ? "with" : "without") << " statistics): "
              << c.all_total() << " ATen calls (budget " << budget << "), " << c.called_total()
              << " at depth 0\n";
    if (std::getenv("HCL_PRINT_OPS") != nullptr)
      for (const auto& [name, n] : c.all) std::cout << "  " << name << " " << n << "\n";
  }
}

// ---- stability in low precision ----------------------------------------------------------------

TEST(Objective, StableForLargeBetaSmallTemperatureInFloat32) {
  const torch::Tensor z1 = random_embeddings(64, 32, 5), z2 = random_embeddings(64, 32, 6);
  for (double beta : {1.0, 5.0, 10.0}) {
    for (double t : {0.5, 0.1, 0.05}) {
      SCOPED_TRACE(::testing::Message() << "beta " << beta << " t " << t);
      const ObjectiveOptions o = ObjectiveOptions().beta(beta).temperature(t);
      const Evaluation wide = evaluate(z1, z2, o);
      const Evaluation narrow = evaluate(z1.to(torch::kFloat), z2.to(torch::kFloat), o);
      ASSERT_TRUE(std::isfinite(narrow.loss.item<double>()));
      ASSERT_TRUE(torch::isfinite(narrow.grad_1).all().item<bool>());
      EXPECT_TRUE(close(narrow.loss, wide.loss, 1e-4));
      const double scale = wide.grad_1.abs().max().item<double>();
      EXPECT_TRUE(close(narrow.grad_1, wide.grad_1, 1e-3, 1e-4 * scale));
      EXPECT_TRUE(close(narrow.grad_2, wide.grad_2, 1e-3, 1e-4 * scale));
    }
  }
  // Where the literal reference overflows in float32 ((1+beta)/t + ln N > 88), ours does not.
  const ObjectiveOptions extreme = ObjectiveOptions().beta(10.0).temperature(0.05);
  const torch::Tensor ref32 = reference_objective(z1.to(torch::kFloat), z2.to(torch::kFloat), extreme);
  EXPECT_FALSE(std::isfinite(ref32.item<double>()));
}

TEST(Objective, BFloat16InputsAgreeWithFloat64) {
  const torch::Tensor z1 = random_embeddings(32, 64, 7).to(torch::kBFloat16);
  const torch::Tensor z2 = random_embeddings(32, 64, 8).to(torch::kBFloat16);
  for (const auto& o : {ObjectiveOptions(), ObjectiveOptions().beta(10.0).temperature(0.05),
                        ObjectiveOptions().estimator(Estimator::Easy)}) {
    const Evaluation low = evaluate(z1, z2, o);
    const Evaluation wide = evaluate(z1.to(torch::kDouble), z2.to(torch::kDouble), o);
    EXPECT_EQ(low.grad_1.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(low.loss.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::isfinite(low.grad_1.to(torch::kFloat)).all().item<bool>());
    EXPECT_TRUE(close(low.loss, wide.loss, 1e-5));
    const double scale = wide.grad_1.abs().max().item<double>();
    EXPECT_TRUE(close(low.grad_1, wide.grad_1, 2e-2, 1e-2 * scale));
  }
}

// ---- edge cases --------------------------------------------------------------------------------

TEST(Objective, IdenticalEmbeddingsGiveLogOnePlusN) {
  const int64_t b = 5;
  const torch::Tensor z = torch::ones({b, 4}, torch::kDouble) / 2.0;  // unit rows, all equal
  for (const auto& o : {ObjectiveOptions(), ObjectiveOptions().estimator(Estimator::Easy),
                        ObjectiveOptions().beta(4.0).tau_plus(0.3)}) {
    const Evaluation e = evaluate(z, z, o);
    EXPECT_NEAR(e.loss.item<double>(), std::log(1.0 + 2 * b - 2), 1e-12);
    EXPECT_TRUE(torch::isfinite(e.grad_1).all().item<bool>());
    EXPECT_NEAR(e.stats.positive_similarity.item<double>(), 1.0, 1e-6);
    EXPECT_NEAR(e.stats.negative_similarity.item<double>(), 1.0, 1e-6);
    EXPECT_NEAR(e.stats.effective_negatives.item<double>(), 1.0, 1e-6);
  }
}

TEST(Objective, OrthogonalEmbeddingsGiveLogOnePlusN) {
  const int64_t b = 4;
  const torch::Tensor eye = torch::eye(2 * b, torch::kDouble);
  const torch::Tensor z1 = eye.narrow(0, 0, b), z2 = eye.narrow(0, b, b);
  for (const auto& o : {ObjectiveOptions(), ObjectiveOptions().estimator(Estimator::Easy)}) {
    const Evaluation e = evaluate(z1, z2, o);
    EXPECT_NEAR(e.loss.item<double>(), std::log(1.0 + 2 * b - 2), 1e-12);
    EXPECT_NEAR(e.stats.negative_similarity.item<double>(), 0.0, 1e-7);
    EXPECT_EQ(e.stats.floor_fraction.item<double>(), 0.0);
  }
}

TEST(Objective, TwoImagesIsTheSmallestBatch) {
  const torch::Tensor z1 = random_embeddings(2, 3, 9), z2 = random_embeddings(2, 3, 10);
  const ObjectiveOptions o = ObjectiveOptions().beta(2.0);
  EXPECT_TRUE(close(evaluate(z1, z2, o).loss, reference_objective(z1, z2, o), 1e-12));
  EXPECT_THROW(contrastive_objective(z1.narrow(0, 0, 1), z2.narrow(0, 0, 1), o), Error);
}

TEST(Objective, AllAnchorsAtTheFloor) {
  // Positives equal to their anchors and tau_plus large: tau_plus N pos exceeds R for every anchor.
  const int64_t b = 6;
  const torch::Tensor z = random_embeddings(b, 16, 11);
  const ObjectiveOptions o = ObjectiveOptions().tau_plus(0.9).temperature(0.2);
  const Evaluation e = evaluate(z, z, o);
  EXPECT_EQ(e.stats.floor_fraction.item<double>(), 1.0);
  const double n = 2.0 * b - 2, t = 0.2;
  // Ng is the floor N e^(-1/t) and pos = e^(1/t) for every anchor.
  const double expected = std::log1p(n * std::exp(-1 / t) / std::exp(1 / t));
  EXPECT_NEAR(e.loss.item<double>(), expected, 1e-12);
  EXPECT_TRUE(close(e.loss, reference_objective(z, z, o), 1e-12));
  EXPECT_TRUE(torch::isfinite(e.grad_1).all().item<bool>());
}

// ---- statistics -------------------------------------------------------------------------------

TEST(Objective, StatisticsMatchDirectComputation) {
  const int64_t b = 7;
  const torch::Tensor z1 = random_embeddings(b, 8, 12), z2 = random_embeddings(b, 8, 13);
  const ObjectiveOptions o = ObjectiveOptions().beta(2.0).temperature(0.4);
  const Evaluation e = evaluate(z1, z2, o);
  const torch::Tensor z = torch::cat({z1, z2}, 0);
  const torch::Tensor sim = z.mm(z.t());
  torch::Tensor mask = torch::ones({2 * b, 2 * b}, torch::kBool);
  for (int64_t i = 0; i < 2 * b; ++i) mask[i][i] = mask[i][(i + b) % (2 * b)] = false;
  const torch::Tensor neg = sim.masked_select(mask).view({2 * b, -1});
  EXPECT_NEAR(e.stats.positive_similarity.item<double>(), (z1 * z2).sum(1).mean().item<double>(), 1e-6);
  EXPECT_NEAR(e.stats.negative_similarity.item<double>(), neg.mean().item<double>(), 1e-6);
  const torch::Tensor w = torch::softmax(neg * (o.beta() / o.temperature()), 1);
  const double ess = (1.0 / w.square().sum(1) / (2.0 * b - 2)).mean().item<double>();
  EXPECT_NEAR(e.stats.effective_negatives.item<double>(), ess, 1e-6);
  EXPECT_LT(ess, 1.0);
}

TEST(Objective, StatisticsCanBeSwitchedOff) {
  const torch::Tensor z = random_embeddings(4, 8, 14);
  const ObjectiveResult r = contrastive_objective(z, z.flip(0), ObjectiveOptions().with_stats(false));
  EXPECT_TRUE(r.loss.defined());
  EXPECT_FALSE(r.stats.positive_similarity.defined());
}

// ---- bad input ----------------------------------------------------------------------------------

void expect_error(const std::function<void()>& call, const std::string& fragment) {
  try {
    call();
    ADD_FAILURE() << "no exception; expected one mentioning '" << fragment << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(Objective, BadInputGivesClearErrors) {
  const torch::Tensor z1 = random_embeddings(4, 8, 15), z2 = random_embeddings(4, 8, 16);
  auto run = [&](const ObjectiveOptions& o) { return [=] { contrastive_objective(z1, z2, o); }; };
  expect_error(run(ObjectiveOptions().temperature(0)), "temperature must be > 0, got 0");
  expect_error(run(ObjectiveOptions().temperature(-1)), "temperature must be > 0, got -1");
  expect_error(run(ObjectiveOptions().tau_plus(1.0)), "tau_plus must be in [0, 1), got 1");
  expect_error(run(ObjectiveOptions().tau_plus(-0.1)), "tau_plus must be in [0, 1), got -0.1");
  expect_error(run(ObjectiveOptions().beta(-2)), "beta must be finite and >= 0, got -2");
  expect_error(run(ObjectiveOptions().column_chunk(-1)), "column chunk must be >= 0");
  expect_error([&] { contrastive_objective(z1.narrow(0, 0, 1), z2.narrow(0, 0, 1), {}); },
               "at least 2 images");
  expect_error([&] { contrastive_objective(z1, z2.narrow(0, 0, 3), {}); }, "same shape");
  expect_error([&] { contrastive_objective(z1, z2.to(torch::kFloat), {}); }, "dtypes differ");
  expect_error([&] { contrastive_objective(z1.flatten(), z2.flatten(), {}); }, "must be 2-D");
  expect_error([] { parse<Estimator>("estimator", "medium"); }, "--estimator: unknown value 'medium'");
  torch::Tensor bad = z1.clone();
  bad[1][2] = std::nan("");
  expect_error([&] { contrastive_objective(bad, z2, {}); }, "non-finite embeddings");
  EXPECT_NO_THROW(contrastive_objective(bad, z2, ObjectiveOptions().check_values(false)));
  const torch::Tensor z = torch::cat({z1, z2}, 0);
  expect_error([&] { contrastive_objective(z, z, ViewLayout{4, 1, 0}, {}); },
               "(candidate rows [1, 9)) are outside the 8 candidates");
  expect_error([&] { contrastive_objective(z, z, ViewLayout{4, 0, 1}, {}); },
               "the anchors (view rows [1, 9) of 8)");
  expect_error([&] { contrastive_objective(z, z, ViewLayout{0, 0, 0}, {}); }, "outside");
}

// ---- beta schedules ---------------------------------------------------------------------------

TEST(BetaSchedule, ConstantIsConstant) {
  const auto s = make_beta_schedule(BetaScheduleKind::Constant, 1.5, 100);
  EXPECT_EQ(s->beta(0), 1.5);
  EXPECT_EQ(s->beta(99), 1.5);
}

TEST(BetaSchedule, DownReachesZeroInNineEqualSteps) {
  const auto s = make_beta_schedule(BetaScheduleKind::Down, 0.9, 100);
  std::vector<double> levels;
  for (int64_t e = 0; e < 100; ++e) {
    const double b = s->beta(e);
    if (levels.empty() || b != levels.back()) levels.push_back(b);
  }
  ASSERT_EQ(levels.size(), 10u);
  for (size_t k = 0; k < levels.size(); ++k) EXPECT_NEAR(levels[k], 0.9 - 0.1 * k, 1e-12);
  EXPECT_EQ(s->beta(0), 0.9);
  EXPECT_EQ(s->beta(9), 0.9);
  EXPECT_NEAR(s->beta(10), 0.8, 1e-12);
  EXPECT_EQ(s->beta(99), 0.0);
  // Short runs skip levels: 3 epochs see phases 0, 3 and 6 of 10.
  const auto short_run = make_beta_schedule(BetaScheduleKind::Down, 1.0, 3);
  EXPECT_NEAR(short_run->beta(1), 1.0 - 3.0 / 9, 1e-12);
  EXPECT_NEAR(short_run->beta(2), 1.0 - 6.0 / 9, 1e-12);
}

TEST(BetaSchedule, BadNamesAndValuesAreRejected) {
  EXPECT_THROW(parse<BetaScheduleKind>("beta-schedule", "up"), Error);
  EXPECT_THROW(make_beta_schedule(BetaScheduleKind::Constant, -1.0, 10), Error);
  EXPECT_THROW(make_beta_schedule(BetaScheduleKind::Down, 1.0, 0), Error);
}

}  // namespace
}  // namespace hcl::loss
