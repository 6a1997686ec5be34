/// @brief Properties of the mask strategies (METHOD.md step 3, Alg. 1, Eq. 3 and 5).
#include <QtTest/QtTest>
#include <torch/torch.h>

#include "core/masking/masking.h"
#include "core/util/error.h"

using namespace mst;

class TestMasking : public QObject {
  Q_OBJECT

 private slots:
  void candidatesAreLowestPatches_data() {
    QTest::addColumn<int>("n");
    QTest::addColumn<int>("num");
    QTest::newRow("49/8") << 49 << 8;
    QTest::newRow("49/1") << 49 << 1;
    QTest::newRow("196/4") << 196 << 4;
    QTest::newRow("9/2") << 9 << 2;
    QTest::newRow("7/8 (none)") << 7 << 8;
  }
  void candidatesAreLowestPatches() {
    QFETCH(int, n);
    QFETCH(int, num);
    torch::manual_seed(3);
    auto attention = torch::rand({16, n});
    auto low = maskCandidates(attention, num, false);
    auto high = maskCandidates(attention, num, true);
    const int64_t count = n / num;
    for (int64_t b = 0; b < 16; ++b) {
      QCOMPARE(low[b].sum().item<int64_t>(), count);
      QCOMPARE(high[b].sum().item<int64_t>(), count);
      if (count == 0 || count == n) continue;
      // Every candidate's attention is <= every non-candidate's (and the mirror for high).
      auto a = attention[b];
      QVERIFY(a.masked_select(low[b]).max().item<float>() <=
              a.masked_select(low[b].logical_not()).min().item<float>());
      QVERIFY(a.masked_select(high[b]).min().item<float>() >=
              a.masked_select(high[b].logical_not()).max().item<float>());
    }
  }

  void tiesBrokenByIndexGiveExactCount() {
    auto attention = torch::zeros({2, 16});  // all equal
    auto low = maskCandidates(attention, 4, false);
    QCOMPARE(low.sum().item<int64_t>(), int64_t{8});
    QVERIFY(low.narrow(1, 0, 4).all().item<bool>());  // the first indices win the tie
    auto high = maskCandidates(attention, 4, true);
    QVERIFY(high.narrow(1, 0, 4).all().item<bool>());
  }

  void guidedMaskIsSubsetOfCandidates() {
    torch::manual_seed(5);
    auto attention = torch::rand({64, 49});
    auto u = torch::rand({64, 49});
    auto mask = makeMask(MaskStrategy::AttentionGuided, attention, u, 0.5, 4);
    auto cand = maskCandidates(attention, 4, false);
    QVERIFY(mask.logical_and(cand.logical_not()).any().item<bool>() == false);
    QVERIFY(mask.any().item<bool>());
  }

  void pOneMasksExactlyTheCandidates_data() {
    QTest::addColumn<int>("num");
    QTest::newRow("1") << 1;
    QTest::newRow("2") << 2;
    QTest::newRow("4") << 4;
    QTest::newRow("8") << 8;
  }
  void pOneMasksExactlyTheCandidates() {
    QFETCH(int, num);
    torch::manual_seed(9);
    auto attention = torch::rand({8, 49});
    auto u = torch::rand({8, 49});
    auto guided = makeMask(MaskStrategy::AttentionGuided, attention, u, 1.0, num);
    QVERIFY(guided.equal(maskCandidates(attention, num, false)));
    QCOMPARE(guided.sum(1).min().item<int64_t>(), int64_t{49 / num});
    auto high = makeMask(MaskStrategy::AttentionHigh, attention, u, 1.0, num);
    QVERIFY(high.equal(maskCandidates(attention, num, true)));
  }

  void empiricalRateApproachesP_data() {
    QTest::addColumn<double>("p");
    QTest::addColumn<int>("num");
    QTest::newRow("p=0.1 num=8") << 0.1 << 8;
    QTest::newRow("p=0.15 num=2") << 0.15 << 2;
    QTest::newRow("p=0.5 num=1") << 0.5 << 1;
  }
  void empiricalRateApproachesP() {
    QFETCH(double, p);
    QFETCH(int, num);
    torch::manual_seed(11);
    const int64_t draws = 20000, n = 49;
    auto attention = torch::rand({draws, n});
    auto u = torch::rand({draws, n});
    auto guided = makeMask(MaskStrategy::AttentionGuided, attention, u, p, num);
    double per_candidate = guided.sum().item<double>() / (draws * (n / num));
    QVERIFY2(std::abs(per_candidate - p) < 0.01, qPrintable(QString::number(per_candidate)));
    auto random = makeMask(MaskStrategy::Random, attention, u, p, num);
    double rate = random.to(torch::kFloat).mean().item<double>();
    QVERIFY2(std::abs(rate - p) < 0.01, qPrintable(QString::number(rate)));
  }

  void sharedDrawMakesGuidedASubsetOfRandom() {
    // Same uniform draw: the guided mask differs from the random one only by the rule.
    torch::manual_seed(2);
    auto attention = torch::rand({32, 49});
    auto u = torch::rand({32, 49});
    auto random = makeMask(MaskStrategy::Random, attention, u, 0.3, 2);
    auto guided = makeMask(MaskStrategy::AttentionGuided, attention, u, 0.3, 2);
    QVERIFY(guided.equal(random.logical_and(maskCandidates(attention, 2, false))));
  }

  void noneMasksNothing() {
    auto u = torch::zeros({4, 49});
    QCOMPARE(makeMask(MaskStrategy::None, {}, u, 1.0, 1).sum().item<int64_t>(), int64_t{0});
  }

  void strategyNames() {
    for (auto s : {MaskStrategy::None, MaskStrategy::Random, MaskStrategy::AttentionGuided,
                   MaskStrategy::AttentionHigh})
      QCOMPARE(parseMaskStrategy(maskStrategyName(s)), s);
    QVERIFY_THROWS_EXCEPTION(MstError, parseMaskStrategy("sometimes"));
  }
};

QTEST_APPLESS_MAIN(TestMasking)
#include "test_masking.moc"
