/// @brief Launchers of the fused augmentation kernels (augment_cuda.cu) and their host twin
/// (augment_reference.cpp), free of LibTorch. One
/// crop set: rows of (C, S, S) float crops cut from (Bsrc, C, H, W) float sources in [0, 1] (row
/// r from source r % Bsrc), with per-row parameters drawn by MultiCrop. C is 1 or 3. Each
/// launcher returns nullptr, or the CUDA error's text.
#pragma once

#include <cstdint>

namespace mst::kernels {

struct AugmentArgs {
  const float* src = nullptr;  ///< (Bsrc, C, H, W) contiguous
  int64_t src_rows = 0;
  int C = 1, H = 0, W = 0;
  int64_t rows = 0;  ///< crops
  int S = 0;         ///< crop side
  const float* theta = nullptr;       ///< (rows, 2, 3): affine_grid's matrices (align_corners false)
  const bool* jitter = nullptr;       ///< (rows) colour jitter drawn
  const float* brightness = nullptr;  ///< (rows) factors
  const float* contrast = nullptr;
  const float* saturation = nullptr;
  const float* hue = nullptr;         ///< (rows) in turns
  const bool* gray = nullptr;         ///< (rows) random grayscale drawn (used when C == 3)
  const float* blur = nullptr;        ///< (rows, 2 * radius + 1) taps, or nullptr: no blur
  int radius = 0;
  const bool* solarize = nullptr;     ///< (rows), or nullptr: none
  const float* mean = nullptr;        ///< (C) normalisation
  const float* std = nullptr;         ///< (C)
  float* work = nullptr;              ///< (rows, C, S, S) scratch
  float* work2 = nullptr;             ///< (rows, C, S, S) scratch (the blur's first pass)
  float* partial = nullptr;           ///< (rows, augmentPartialStride(S)) scratch
  float* out = nullptr;               ///< (rows, C, S, S) normalised crops
  void* stream = nullptr;             ///< cudaStream_t
};

/// Threads per block of the per-pixel passes.
constexpr int kAugmentThreads = 256;
/// Blocks per row of the per-pixel passes: the luminance's partial sums, one per block.
inline int augmentPartialBlocks(int S) { return (S * S + kAugmentThreads - 1) / kAugmentThreads; }
/// After a row's partial sums, the row's statistics (written by the kernels' second pass):
/// the luminance mean, whether the row's blur was drawn (1 or 0), the hue rotation's cosine and
/// sine.
enum AugmentRowStat { kRowMean = 0, kRowBlurred = 1, kRowCos = 2, kRowSin = 3, kRowStats = 4 };
/// Floats per row of the `partial` scratch.
inline int augmentPartialStride(int S) { return augmentPartialBlocks(S) + kRowStats; }
/// Side of the square output tile of the one-pass blur kernel.
constexpr int kBlurTile = 32;
/// Dynamic shared memory of the one-pass blur at `radius`: the tile's input with its margins,
/// the rows' horizontal pass and the taps, in floats × 4 bytes.
inline long long augmentBlurTileBytes(int radius) {
  const long long span = kBlurTile + 2LL * radius;
  return 4 * (span * span + span * kBlurTile + 2LL * radius + 1);
}
/// The one-pass blur runs where its shared memory fits in the 48 KiB every device gives a block
/// (radius ≤ 31); beyond that the blur takes two passes through global memory.
constexpr long long kBlurTileMaxBytes = 48 * 1024;
/// Whether the blur at `radius` takes the two passes through global memory (and so the second
/// scratch, `work2`) instead of the tile kernel.
inline bool augmentBlurTakesTwoPasses(int radius) {
  return augmentBlurTileBytes(radius) > kBlurTileMaxBytes;
}
/// What is wrong with `args` (channels other than 1 or 3, too many rows, a blur radius not below
/// the crop side), or nullptr.
inline const char* augmentArgsError(const AugmentArgs& a) {
  if (a.C != 1 && a.C != 3) return "fused augmentation: 1 or 3 channels";
  if (a.rows > 65535) return "fused augmentation: more than 65535 crops in one set";
  if (a.blur != nullptr && (a.radius < 0 || (a.S > 0 && a.radius >= a.S)))
    return "fused augmentation: the blur radius must be below the crop side";
  return nullptr;
}
/// Crop (bilinear, reflection padding), colour jitter, grayscale, blur, solarise, normalise, on
/// the device (CUDA builds with the kernels only).
const char* augmentCrops(const AugmentArgs& args);
/// The same passes over host memory, one pixel at a time, with the same per-pixel functions
/// (augment_pixel.h) and the same order of the luminance sums: what the tests compare with
/// MultiCrop's ATen operations. `stream` is ignored.
const char* augmentCropsOnHost(const AugmentArgs& args);

}  // namespace mst::kernels
