/// @brief libjpeg decoding and resampling (see jpeg_decode.h).
#include "core/data/jpeg_decode.h"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdint>
#include <cstdio>

#ifdef MST_HAVE_LIBJPEG
#include <jpeglib.h>
#endif

namespace mst {
namespace {

/// Weights of one output sample over the input samples it covers.
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

/// 1-D resampling plan from `in` samples to `out`: box coverage when shrinking (each output
/// averages the input interval it covers, fractional ends weighted), linear when enlarging.
std::vector<Taps> plan(int in, int out) {
  std::vector<Taps> taps(static_cast<size_t>(out));
  const double scale = static_cast<double>(in) / out;
  for (int i = 0; i < out; ++i) {
    Taps& t = taps[static_cast<size_t>(i)];
    if (scale >= 1.0) {
      const double lo = i * scale, hi = (i + 1) * scale;
      t.first = static_cast<int>(std::floor(lo));
      const int last = std::min(in - 1, static_cast<int>(std::ceil(hi)) - 1);
      for (int j = t.first; j <= last; ++j)
        t.weights.push_back(static_cast<float>((std::min<double>(hi, j + 1) - std::max<double>(lo, j)) / scale));
    } else {
      const double x = std::clamp((i + 0.5) * scale - 0.5, 0.0, static_cast<double>(in - 1));
      t.first = std::min(static_cast<int>(x), std::max(in - 2, 0));
      const float f = static_cast<float>(x - t.first);
      t.weights = in > 1 ? std::vector<float>{1.0f - f, f} : std::vector<float>{1.0f};
    }
  }
  return taps;
}

}  // namespace

// Rows first into floats, then columns, each output row a weighted sum of whole float rows
// (vectorisable); one rounding at the end.

std::vector<uint8_t> resizeInterleavedWindow(const uint8_t* src, int h, int w, int c, int out_h,
                                             int out_w, int top, int left, int rows, int cols) {
  const auto across = plan(w, out_w), down = plan(h, out_h);
  int y0 = h, y1 = 0;  // the input rows the window's output rows read
  for (int r = top; r < top + rows; ++r) {
    const Taps& t = down[static_cast<size_t>(r)];
    y0 = std::min(y0, t.first);
    y1 = std::max(y1, t.first + static_cast<int>(t.weights.size()));
  }
  const size_t stride = static_cast<size_t>(cols) * c;
  std::vector<float> mid(static_cast<size_t>(std::max(0, y1 - y0)) * stride);
  for (int y = y0; y < y1; ++y) {
    const uint8_t* row = src + static_cast<size_t>(y) * w * c;
    float* o = mid.data() + static_cast<size_t>(y - y0) * stride;
    for (int x = 0; x < cols; ++x) {
      const Taps& t = across[static_cast<size_t>(left + x)];
      for (int k = 0; k < c; ++k) {
        float sum = 0;
        for (size_t j = 0; j < t.weights.size(); ++j) sum += t.weights[j] * row[(t.first + j) * c + k];
        o[x * c + k] = sum;
      }
    }
  }
  std::vector<uint8_t> out(static_cast<size_t>(rows) * stride);
  std::vector<float> acc(stride);
  for (int r = 0; r < rows; ++r) {
    const Taps& t = down[static_cast<size_t>(top + r)];
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (size_t j = 0; j < t.weights.size(); ++j) {
      const float weight = t.weights[j];
      const float* m = mid.data() + static_cast<size_t>(t.first + static_cast<int>(j) - y0) * stride;
      for (size_t i = 0; i < stride; ++i) acc[i] += weight * m[i];
    }
    uint8_t* o = out.data() + static_cast<size_t>(r) * stride;
    for (size_t i = 0; i < stride; ++i)  // (sums of non-negative terms: +0.5 rounds half up)
      o[i] = static_cast<uint8_t>(std::min(255.0f, acc[i] + 0.5f));
  }
  return out;
}

std::vector<uint8_t> resizeInterleaved(const std::vector<uint8_t>& src, int h, int w, int c,
                                       int out_h, int out_w) {
  return resizeInterleavedWindow(src.data(), h, w, c, out_h, out_w, 0, 0, out_h, out_w);
}

#ifdef MST_HAVE_LIBJPEG

namespace {

/// libjpeg reports fatal errors through error_exit, which must not return: jump back out.
struct JumpingError {
  jpeg_error_mgr base;
  std::jmp_buf jump;
};

void jumpOut(j_common_ptr info) { std::longjmp(reinterpret_cast<JumpingError*>(info->err)->jump, 1); }
void quiet(j_common_ptr) {}

/// Decodes into `rgb` (interleaved), at 1/denom of the full size. Only trivially destructible
/// state lives between setjmp and a possible longjmp; `rgb` is owned by the caller.
bool decode(std::FILE* file, int side, std::vector<uint8_t>& rgb, int& h, int& w) {
  jpeg_decompress_struct info;
  JumpingError error;
  info.err = jpeg_std_error(&error.base);
  error.base.error_exit = jumpOut;
  error.base.output_message = quiet;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  jpeg_create_decompress(&info);
  jpeg_stdio_src(&info, file);
  jpeg_read_header(&info, TRUE);
  // OpenCV's limit (CV_IO_MAX_IMAGE_PIXELS, 2^30 pixels), on the header's full size as OpenCV
  // applies it, and before start_decompress (which for a progressive file allocates full-size
  // coefficient buffers): both builds call such a file unreadable rather than allocate gigabytes
  // for a header's word.
  if (static_cast<uint64_t>(info.image_width) * info.image_height > (uint64_t{1} << 30)) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  info.out_color_space = JCS_RGB;
  // The decoder's own DCT scaling (1/2, 1/4, 1/8) while the shorter side stays >= side: a
  // 500-px photo for a 256-px load decodes at full size, a 2000-px one at a quarter.
  const unsigned shorter = std::min(info.image_width, info.image_height);
  unsigned denom = 1;
  while (denom < 8 && shorter / (denom * 2) >= static_cast<unsigned>(side)) denom *= 2;
  info.scale_num = 1;
  info.scale_denom = denom;
  jpeg_start_decompress(&info);
  w = static_cast<int>(info.output_width);
  h = static_cast<int>(info.output_height);
  if (info.output_components != 3) {
    jpeg_destroy_decompress(&info);
    return false;
  }
  rgb.resize(static_cast<size_t>(w) * h * 3);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = rgb.data() + static_cast<size_t>(info.output_scanline) * w * 3;
    jpeg_read_scanlines(&info, &row, 1);
  }
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  return true;
}

}  // namespace

bool jpegDecoderAvailable() { return true; }

bool decodeJpegCentreCrop(const std::string& path, int side, uint8_t* dst) {
  if (side <= 0) return false;
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  std::vector<uint8_t> rgb;
  int h = 0, w = 0;
  const bool ok = decode(file, side, rgb, h, w);
  std::fclose(file);
  if (!ok || h <= 0 || w <= 0) return false;
  // Shorter side to `side`, as the OpenCV path: the other side rounded, never below `side`.
  const double scale = static_cast<double>(side) / std::min(h, w);
  const int out_h = std::max(side, static_cast<int>(std::lround(h * scale)));
  const int out_w = std::max(side, static_cast<int>(std::lround(w * scale)));
  const int top = (out_h - side) / 2, left = (out_w - side) / 2;
  // The side × side window, interleaved: the decoded pixels themselves when no resize is needed.
  std::vector<uint8_t> resized;
  const uint8_t* window = rgb.data() + (static_cast<size_t>(top) * w + left) * 3;
  size_t row_stride = static_cast<size_t>(w) * 3;
  if (out_h != h || out_w != w) {
    resized = resizeInterleavedWindow(rgb.data(), h, w, 3, out_h, out_w, top, left, side, side);
    window = resized.data();
    row_stride = static_cast<size_t>(side) * 3;
  }
  const size_t plane = static_cast<size_t>(side) * side;
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      for (int k = 0; k < 3; ++k)
        dst[k * plane + static_cast<size_t>(y) * side + x] = window[y * row_stride + x * 3 + k];
  return true;
}

#else

bool jpegDecoderAvailable() { return false; }

bool decodeJpegCentreCrop(const std::string&, int, uint8_t*) { return false; }

#endif

}  // namespace mst
