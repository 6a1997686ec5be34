/// @brief The fused augmentation's passes on the host (see augment_cuda.h): the CUDA kernels'
/// per-pixel functions in plain loops. The luminance sums are grouped by the kernels' blocks (the
/// order inside a block differs: the kernel adds a tree, this loop adds in sequence).
#include <vector>

#include "core/kernels/augment_cuda.h"
#include "core/kernels/augment_pixel.h"

namespace mst::kernels {

const char* augmentCropsOnHost(const AugmentArgs& a) {
  using namespace pixel;
  if (const char* e = augmentArgsError(a)) return e;
  const int SS = a.S * a.S, blocks = augmentPartialBlocks(a.S);
  const long long plane = static_cast<long long>(a.H) * a.W;
  for (int64_t row = 0; row < a.rows; ++row) {
    const bool jitter = a.jitter[row];
    // Pass 1, summing the luminance per block of kAugmentThreads pixels, then the blocks in order.
    std::vector<float> block_sum(blocks, 0.0f);
    for (int p = 0; p < SS; ++p) {
      float v[3] = {0.0f, 0.0f, 0.0f};
      cropPixel(a.src + (row % a.src_rows) * a.C * plane, a.C, a.H, a.W, a.theta + row * 6, a.S,
                p / a.S, p % a.S, jitter, a.brightness[row], v);
      for (int c = 0; c < a.C; ++c) a.work[(row * a.C + c) * SS + p] = v[c];
      if (jitter) block_sum[p / kAugmentThreads] += grayOf(v, a.C);
    }
    float total = 0.0f;
    for (float b : block_sum) total += b;
    const float mean = total / static_cast<float>(SS);
    // Pass 2.
    const bool gray = a.C == 3 && a.gray[row];
    if (jitter || gray) {
      float cs = 1.0f, sn = 0.0f;
      if (jitter && a.C == 3) hueRotation(a.hue[row], &cs, &sn);
      for (int p = 0; p < SS; ++p) {
        float v[3];
        for (int c = 0; c < a.C; ++c) v[c] = a.work[(row * a.C + c) * SS + p];
        colourPixel(v, a.C, jitter, gray, mean, a.contrast[row], a.saturation[row], cs, sn);
        for (int c = 0; c < a.C; ++c) a.work[(row * a.C + c) * SS + p] = v[c];
      }
    }
    // Passes 3 and 4.
    const float* taps = a.blur != nullptr ? a.blur + row * (2 * a.radius + 1) : nullptr;
    const bool solarize = a.solarize != nullptr && a.solarize[row];
    for (int c = 0; c < a.C; ++c) {
      const float* in = a.work + (row * a.C + c) * SS;
      float* mid = a.work2 != nullptr ? a.work2 + (row * a.C + c) * SS : nullptr;
      if (taps != nullptr)
        for (int p = 0; p < SS; ++p)
          mid[p] = blurAt(in + (p / a.S) * a.S, 1, a.S, p % a.S, taps, a.radius);
      for (int p = 0; p < SS; ++p) {
        const float v = taps != nullptr ? blurAt(mid + p % a.S, a.S, a.S, p / a.S, taps, a.radius)
                                        : in[p];
        a.out[(row * a.C + c) * SS + p] = finishValue(v, solarize, a.mean[c], a.std[c]);
      }
    }
  }
  return nullptr;
}

}  // namespace mst::kernels
