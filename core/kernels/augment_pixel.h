/// @brief The per-pixel arithmetic of the fused augmentation, shared by the CUDA kernels
/// (augment_cuda.cu) and a plain C++ loop over the same functions (augment_reference.cpp) that
/// the CPU tests compare with MultiCrop's ATen operations: what the kernels compute is checked
/// here even without a GPU; the kernels add only the threads' indexing.
#pragma once

#include <cmath>

#include "core/kernels/host_device.h"

namespace mst::kernels::pixel {

MST_HD float clamp01(float v) { return fminf(fmaxf(v, 0.0f), 1.0f); }

/// ITU-R 601 luminance, in the order MultiCrop's luminance() adds.
MST_HD float luminance(float r, float g, float b) { return r * 0.299f + g * 0.587f + b * 0.114f; }

/// grid_sample's source coordinate for align_corners = false and reflection padding: the
/// normalised coordinate g in [-1, 1] to a pixel coordinate, reflected about -0.5 and
/// size - 0.5, then clipped.
MST_HD float sourceCoordinate(float g, int size) {
  float coord = ((g + 1.0f) * static_cast<float>(size) - 1.0f) * 0.5f;
  const float low = -0.5f, span = static_cast<float>(size);
  const float in = fabsf(coord - low);
  const float extra = fmodf(in, span);
  const int flips = static_cast<int>(floorf(in / span));
  coord = (flips % 2 == 0) ? extra + low : span - extra + low;
  return fminf(static_cast<float>(size - 1), fmaxf(coord, 0.0f));
}

/// Reflect-padded index ('reflect': the edge is not repeated) for |offset| < size.
MST_HD int reflectIndex(int i, int size) {
  if (i < 0) return -i;
  if (i >= size) return 2 * (size - 1) - i;
  return i;
}

/// Pixel (i, j) of an S×S crop of `src` (C planes of H×W) under the affine_grid matrix `t`
/// (align_corners = false), bilinear; then the brightness factor b when `jitter`. v: C values.
MST_HD void cropPixel(const float* src, int C, int H, int W, const float* t, int S, int i, int j,
                      bool jitter, float b, float* v) {
  const float bx = (2.0f * j + 1.0f) / S - 1.0f, by = (2.0f * i + 1.0f) / S - 1.0f;
  const float ix = sourceCoordinate(t[0] * bx + t[1] * by + t[2], W);
  const float iy = sourceCoordinate(t[3] * bx + t[4] * by + t[5], H);
  const int x0 = static_cast<int>(floorf(ix)), y0 = static_cast<int>(floorf(iy));
  const float fx = ix - x0, fy = iy - y0;
  const float w_nw = (1 - fx) * (1 - fy), w_ne = fx * (1 - fy), w_sw = (1 - fx) * fy,
              w_se = fx * fy;
  const bool in_e = x0 + 1 < W, in_s = y0 + 1 < H;
  const long long plane = static_cast<long long>(H) * W;
  for (int c = 0; c < C; ++c) {
    const float* s = src + c * plane + static_cast<long long>(y0) * W + x0;
    float value = w_nw * s[0];
    if (in_e) value += w_ne * s[1];
    if (in_s) value += w_sw * s[W];
    if (in_e && in_s) value += w_se * s[W + 1];
    v[c] = jitter ? clamp01(value * b) : value;
  }
}

/// The luminance-mean contribution of a cropped pixel (contrast's statistic).
MST_HD float grayOf(const float* v, int C) { return C == 3 ? luminance(v[0], v[1], v[2]) : v[0]; }

/// The hue rotation's cosine and sine for `hue` turns: one pair per crop, which the kernels
/// compute once per row instead of once per pixel.
MST_HD void hueRotation(float hue, float* cs, float* sn) {
  const float angle = hue * 6.283185307179586f;
  *cs = cosf(angle);
  *sn = sinf(angle);
}

/// Contrast about `mean`, saturation and hue (YIQ rotation by (cs, sn) = hueRotation(hue)) when
/// `jitter`, then random grayscale when `gray` (3 channels only), in place.
MST_HD void colourPixel(float* v, int C, bool jitter, bool gray, float mean, float contrast,
                        float saturation, float cs, float sn) {
  if (jitter) {
    for (int c = 0; c < C; ++c) v[c] = clamp01((v[c] - mean) * contrast + mean);
    if (C == 3) {
      const float l = luminance(v[0], v[1], v[2]);
      for (int c = 0; c < 3; ++c) v[c] = clamp01((v[c] - l) * saturation + l);
      const float Y = v[0] * 0.299f + v[1] * 0.587f + v[2] * 0.114f;
      const float I = v[0] * 0.596f - v[1] * 0.274f - v[2] * 0.322f;
      const float Q = v[0] * 0.211f - v[1] * 0.523f + v[2] * 0.312f;
      const float I2 = I * cs - Q * sn, Q2 = I * sn + Q * cs;
      v[0] = clamp01(Y + 0.956f * I2 + 0.621f * Q2);
      v[1] = clamp01(Y - 0.272f * I2 - 0.647f * Q2);
      v[2] = clamp01(Y - 1.106f * I2 + 1.703f * Q2);
    }
  }
  if (gray && C == 3) v[0] = v[1] = v[2] = luminance(v[0], v[1], v[2]);
}

/// Whether `taps` (2 radius + 1 of them) are the identity: 1 at the centre, 0 elsewhere, MultiCrop's
/// taps for a crop the blur was not drawn for. Such a blur leaves every finite value exactly as it
/// is (0 · x adds ±0), so the kernels skip it.
MST_HD bool identityTaps(const float* taps, int radius) {
  for (int t = 0; t <= 2 * radius; ++t)
    if (taps[t] != (t == radius ? 1.0f : 0.0f)) return false;
  return true;
}

/// Σ_t taps[t] · line[reflect(pos + t − radius)] along a line of S values `stride` apart.
MST_HD float blurAt(const float* line, long long stride, int S, int pos, const float* taps,
                    int radius) {
  float total = 0.0f;
  for (int t = 0; t <= 2 * radius; ++t)
    total += taps[t] * line[static_cast<long long>(reflectIndex(pos + t - radius, S)) * stride];
  return total;
}

/// Solarisation (when drawn) and normalisation.
MST_HD float finishValue(float v, bool solarize, float mean, float std) {
  if (solarize && v >= 0.5f) v = 1.0f - v;
  return (v - mean) / std;
}

}  // namespace mst::kernels::pixel
