/// @brief L_CE against a hand computation, the centre update, L_rec and schedule end points.
#include <QtTest/QtTest>
#include <torch/torch.h>

#include <cmath>

#include "core/config/config.h"
#include "core/kernels/dino_loss.h"
#include "core/train/losses.h"
#include "core/train/schedules.h"

using namespace mst;

namespace {

/// softmax of a 2-vector.
std::array<double, 2> softmax2(double a, double b) {
  double m = std::max(a, b), ea = std::exp(a - m), eb = std::exp(b - m);
  return {ea / (ea + eb), eb / (ea + eb)};
}

}  // namespace

class TestLosses : public QObject {
  Q_OBJECT

 private slots:
  void distillationMatchesHandComputation() {
    // B = 1, K = 2, S = 3 crops (g1, g2, one local); teacher sees g1, g2.
    const double ts = 0.1, tt = 0.04;
    const double s[3][2] = {{0.3, -0.2}, {0.1, 0.5}, {-0.4, 0.2}};
    const double t[2][2] = {{0.2, 0.6}, {-0.1, 0.05}};
    const double c[2] = {0.05, -0.02};
    auto student = torch::tensor({s[0][0], s[0][1], s[1][0], s[1][1], s[2][0], s[2][1]},
                                 torch::kDouble).view({3, 2});
    auto teacher = torch::tensor({t[0][0], t[0][1], t[1][0], t[1][1]}, torch::kDouble).view({2, 2});
    auto center = torch::tensor({c[0], c[1]}, torch::kDouble).view({1, 2});
    double expected = 0;
    int pairs = 0;
    for (int i = 0; i < 2; ++i) {
      auto p = softmax2((t[i][0] - c[0]) / tt, (t[i][1] - c[1]) / tt);
      for (int j = 0; j < 3; ++j) {
        if (j == i) continue;  // pairs i ≠ j only
        auto q = softmax2(s[j][0] / ts, s[j][1] / ts);
        expected += -(p[0] * std::log(q[0]) + p[1] * std::log(q[1]));
        ++pairs;
      }
    }
    expected /= pairs;
    QCOMPARE(pairs, 4);
    double got = distillationLoss(student, teacher, center, ts, tt).item<double>();
    QVERIFY2(std::abs(got - expected) < 1e-10, qPrintable(QString("%1 vs %2").arg(got).arg(expected)));
  }

  void distillationExcludesSameCropPairs() {
    // Identical student and teacher crops with a sharp teacher: including i == j pairs would
    // lower the loss; the i ≠ j loss must equal the batched mean over the other crops only.
    torch::manual_seed(0);
    const int64_t B = 4, K = 8;
    auto teacher = torch::randn({2 * B, K}, torch::kDouble);
    auto student = torch::randn({3 * B, K}, torch::kDouble);
    auto center = torch::zeros({1, K}, torch::kDouble);
    auto loss = distillationLoss(student, teacher, center, 0.1, 0.04).item<double>();
    auto tp = (teacher / 0.04).softmax(-1).view({2, B, K});
    auto sl = (student / 0.1).log_softmax(-1).view({3, B, K});
    double sum = 0;
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 3; ++j)
        if (i != j) sum += -(tp[i] * sl[j]).sum(-1).mean().item<double>();
    QVERIFY(std::abs(loss - sum / 4) < 1e-10);
  }

  void fusedDistillationMatchesAutograd() {
    // train.fused_loss's autograd function (here its ATen arithmetic, which the CUDA kernels
    // mirror: log-sum-exp, target dot product and target sum per student row; backward
    // g·coef·(c − csum·softmax)) against distillationLoss through autograd, in double: the loss
    // and the logits' gradient, for two global crops alone and with local crops, with an
    // incoming gradient other than 1.
    torch::manual_seed(12);
    const int64_t B = 4, K = 16;
    const double ts = 0.1, tt = 0.04;
    for (int64_t S : {2, 3, 12}) {
      auto teacher = torch::randn({2 * B, K}, torch::kDouble);
      auto center = 0.1 * torch::randn({1, K}, torch::kDouble);
      auto probs = ((teacher - center) / tt).softmax(-1);
      auto student = torch::randn({S * B, K}, torch::kDouble).requires_grad_(true);
      auto ref = distillationLoss(student, teacher, center, ts, tt);
      auto ref_grad = torch::autograd::grad({ref * 2.5}, {student})[0];
      auto got = fusedDistillationLoss(student, probs, ts);
      auto got_grad = torch::autograd::grad({got * 2.5}, {student})[0];
      const auto what = "S = " + std::to_string(S);
      QVERIFY2(std::abs(got.item<double>() - ref.item<double>()) < 1e-12, what.c_str());
      QVERIFY2(torch::allclose(got_grad, ref_grad, 1e-10, 1e-13),
               (what + ": " + std::to_string((got_grad - ref_grad).abs().max().item<double>())).c_str());
    }
    // bf16 logits: computed in fp32 from the stored values, the gradient rounded to bf16.
    auto teacher = torch::randn({2 * B, K});
    auto probs = (teacher / tt).softmax(-1);
    auto logits = torch::randn({5 * B, K}).to(torch::kBFloat16).requires_grad_(true);
    auto got = fusedDistillationLoss(logits, probs, ts);
    auto got_grad = torch::autograd::grad({got}, {logits})[0];
    QCOMPARE(got_grad.scalar_type(), torch::kBFloat16);
    auto as_float = logits.detach().to(torch::kFloat).requires_grad_(true);
    auto ref = distillationLoss(as_float, teacher, torch::zeros({1, K}), ts, tt);
    auto ref_grad = torch::autograd::grad({ref}, {as_float})[0];
    QVERIFY(std::abs(got.item<double>() - ref.item<double>()) < 1e-5 * std::abs(ref.item<double>()));
    QVERIFY(torch::allclose(got_grad.to(torch::kFloat), ref_grad, 1e-2, 1e-6));
    // distillationLoss(fused) takes the same path and accepts bf16 logits where the kernels do
    // not run (here, the CPU): ATen's arithmetic on their fp32 copy.
    auto routed = distillationLoss(logits.detach(), teacher, torch::zeros({1, K}), ts, tt, true);
    QCOMPARE(routed.item<double>(), ref.item<double>());
    QVERIFY_THROWS_EXCEPTION(c10::Error, fusedDistillationLoss(logits, probs.narrow(0, 0, 6), ts));
  }

  void centerUpdate() {
    auto center = torch::tensor({1.0, 2.0}).view({1, 2});
    auto teacher = torch::tensor({3.0, 4.0, 5.0, 8.0}).view({2, 2});  // row mean (4, 6)
    updateCenter(center, teacher, 0.9);
    QVERIFY(torch::allclose(center, torch::tensor({0.9 * 1 + 0.1 * 4, 0.9 * 2 + 0.1 * 6}).view({1, 2})));
  }

  void reconstructionIsMeanAbsoluteError() {
    auto a = torch::tensor({1.0, -2.0, 3.0, 0.5}).view({1, 1, 2, 2});
    auto b = torch::tensor({0.0, 0.0, 1.0, 1.0}).view({1, 1, 2, 2});
    QCOMPARE(reconstructionLoss(a, b).item<double>(), (1 + 2 + 2 + 0.5) / 4.0);
  }

  void scheduleEndPoints() {
    Config c;
    c.train.epochs = 100;
    c.train.batch_size = 512;
    c.optim.lr = 5e-4;
    Schedules s(c, /*steps_per_epoch=*/10, /*total_steps=*/1000);
    auto first = s.at(0), last = s.at(999);
    const double peak = 5e-4 * 512 / 256;
    QCOMPARE(first.lr, 0.0);
    QVERIFY(std::abs(s.at(s.lrWarmupSteps()).lr - peak) < 1e-12);  // warm-up reaches the peak
    QVERIFY(std::abs(last.lr - c.optim.min_lr) < 1e-12);
    QVERIFY(std::abs(first.weight_decay - 0.04) < 1e-12);
    QVERIFY(std::abs(last.weight_decay - 0.4) < 1e-12);
    QVERIFY(std::abs(first.momentum - 0.996) < 1e-12);
    QVERIFY(std::abs(last.momentum - 1.0) < 1e-12);
    QVERIFY(std::abs(first.teacher_temp - 0.04) < 1e-12);
    QVERIFY(std::abs(s.at(s.teacherTempWarmupSteps()).teacher_temp - 0.07) < 1e-12);
    QCOMPARE(s.lrWarmupSteps(), int64_t{100});          // 10 epochs
    QCOMPARE(s.teacherTempWarmupSteps(), int64_t{300});  // 30 epochs
    QVERIFY(first.freeze_last_layer);
    QVERIFY(!s.at(10).freeze_last_layer);  // frozen for exactly one epoch
    // Monotone pieces: lr falls after warm-up, momentum rises.
    QVERIFY(s.at(500).lr > s.at(600).lr);
    QVERIFY(s.at(500).momentum < s.at(600).momentum);
  }

  void schedulesHaveTheirShapesBetweenTheEndPoints() {
    // End points and monotony do not tell a cosine from a straight line, nor a linear warm-up
    // from any other rising curve: look a quarter of the way along each piece, where they differ
    // (a cosine from a to b is at b + (a - b)(1 + cos(π/4))/2 there, a line at b + 3(a - b)/4).
    Config c;
    c.train.epochs = 100;
    c.train.batch_size = 512;
    c.optim.lr = 5e-4;
    Schedules s(c, /*steps_per_epoch=*/10, /*total_steps=*/1001);  // decays span 1000 steps
    const double peak = 5e-4 * 512 / 256, quarter = 0.5 * (1 + std::cos(M_PI / 4));
    auto near = [](double got, double want) { return std::abs(got - want) < 1e-12; };
    // Linear warm-ups: lr 0 → peak over 10 epochs, τ_t 0.04 → 0.07 over 30.
    QVERIFY2(near(s.at(25).lr, 0.25 * peak), qPrintable(QString::number(s.at(25).lr)));
    QVERIFY2(near(s.at(75).teacher_temp, 0.0475), qPrintable(QString::number(s.at(75).teacher_temp)));
    // Cosines: lr from the end of its warm-up (900 steps), wd and momentum over the whole run.
    const double lr_q = c.optim.min_lr + (peak - c.optim.min_lr) * quarter;
    QVERIFY2(near(s.at(100 + 225).lr, lr_q), qPrintable(QString::number(s.at(325).lr)));
    QVERIFY2(near(s.at(250).weight_decay, 0.4 + (0.04 - 0.4) * quarter),
             qPrintable(QString::number(s.at(250).weight_decay)));
    QVERIFY2(near(s.at(250).momentum, 1.0 + (0.996 - 1.0) * quarter),
             qPrintable(QString::number(s.at(250).momentum)));
    QVERIFY(near(s.at(1000).lr, c.optim.min_lr));
    // The last layer is frozen for exactly the first epoch: its last step too.
    QVERIFY(s.at(9).freeze_last_layer);
    QVERIFY(!s.at(10).freeze_last_layer);
  }

  void shortRunsScaleTheWarmUps() {
    Config c;
    c.train.epochs = 5;
    Schedules s(c, 100, 500);
    QCOMPARE(s.lrWarmupSteps(), int64_t{50});          // 10% of the run instead of 10 epochs
    QCOMPARE(s.teacherTempWarmupSteps(), int64_t{150});  // 30% instead of 30 epochs
    QVERIFY(std::abs(s.at(499).teacher_temp - 0.07) < 1e-12);
  }
};

QTEST_APPLESS_MAIN(TestLosses)
#include "test_losses.moc"
