/// @brief JPEG decoding with libjpeg(-turbo) for builds without OpenCV (the GPU machine): the
/// ImageFolder's shorter-side resize and centre crop, with libjpeg's DCT scaling doing most of a
/// large shrink inside the decoder.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mst {

/// True when this build links libjpeg.
bool jpegDecoderAvailable();

/// Decodes the JPEG at `path` (grey or colour), scales its shorter side to `side` (area average
/// when shrinking, bilinear when enlarging, aspect ratio kept) and writes the centred
/// side × side crop as RGB planes (CHW, uint8) into `dst` (3 · side² bytes). False when the file
/// cannot be opened or is not a readable JPEG; never throws.
bool decodeJpegCentreCrop(const std::string& path, int side, uint8_t* dst);

/// Resamples one interleaved 8-bit image (h × w × c) to (out_h × out_w × c): area averaging along
/// a shrunk axis, bilinear (edge-clamped) along an enlarged one. Exposed for tests.
std::vector<uint8_t> resizeInterleaved(const std::vector<uint8_t>& src, int h, int w, int c,
                                       int out_h, int out_w);

/// Rows [top, top + rows) and columns [left, left + cols) of resizeInterleaved's result, computed
/// alone (the loader's centre crop needs no more of the resized image).
std::vector<uint8_t> resizeInterleavedWindow(const uint8_t* src, int h, int w, int c, int out_h,
                                             int out_w, int top, int left, int rows, int cols);

}  // namespace mst
