/// @brief Linear probe implementation (see linear_probe.h).
#include "core/eval/linear_probe.h"

#include <cmath>

#include "core/eval/class_readout.h"
#include "core/util/error.h"
#include "core/util/torch_compat.h"

namespace mst {

LinearProbeResult linearProbe(const FeatureSet& train, const FeatureSet& test,
                              const LinearProbeOptions& o) {
  TORCH_CHECK(train.features.dim() == 2 && train.features.size(0) == train.labels.size(0),
              "linearProbe: features (N, F) and labels (N) disagree");
  if (o.epochs < 1 || o.batch < 1 || !(o.lr > 0) || !std::isfinite(o.lr))
    throw MstError("linear probe: epochs and batch must be >= 1 and the learning rate > 0 (got " +
                   std::to_string(o.epochs) + " epochs, batch " + std::to_string(o.batch) +
                   ", lr " + std::to_string(o.lr) + ")");
  auto mean = train.features.mean(0, true);
  auto std = train.features.std(0, /*unbiased=*/true, /*keepdim=*/true).clamp_min(1e-6);
  auto x_train = (train.features - mean) / std;
  auto x_test = (test.features - mean) / std;
  const int64_t N = x_train.size(0), F = x_train.size(1);

  torch::manual_seed(o.seed);
  torch::nn::Linear classifier(F, o.num_classes);
  {
    torch::NoGradGuard guard;
    classifier->weight.normal_(0.0, 0.01);
    classifier->bias.zero_();
  }
  const double peak = o.lr * static_cast<double>(o.batch) / 256.0;
  torch::optim::SGD sgd(classifier->parameters(), torch::optim::SGDOptions(peak)
                                                      .momentum(o.momentum)
                                                      .weight_decay(o.weight_decay));
  const int64_t per_epoch = (N + o.batch - 1) / o.batch;
  const int64_t total = per_epoch * o.epochs;
  int64_t step = 0;
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    at::Generator gen = makeGenerator(torch::kCPU, mixSeed(o.seed, static_cast<uint64_t>(epoch)));
    auto order = torch::randperm(N, gen, torch::kLong);
    for (int64_t b = 0; b < per_epoch; ++b, ++step) {
      const double lr = 0.5 * peak * (1.0 + std::cos(M_PI * static_cast<double>(step) / total));
      for (auto& group : sgd.param_groups())
        static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
      auto idx = order.narrow(0, b * o.batch, std::min(o.batch, N - b * o.batch));
      auto loss = torch::nn::functional::cross_entropy(classifier(x_train.index_select(0, idx)),
                                                       train.labels.index_select(0, idx));
      sgd.zero_grad();
      loss.backward();
      sgd.step();
    }
  }
  torch::NoGradGuard guard;
  auto predict = [&](const torch::Tensor& x) {
    return x.size(0) == 0 ? torch::empty({0}, torch::kLong) : classifier(x).argmax(1).cpu();
  };
  auto test_predicted = predict(x_test);
  return {top1Percent(predict(x_train), train.labels), top1Percent(test_predicted, test.labels),
          test_predicted};
}

}  // namespace mst
