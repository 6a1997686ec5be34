/// @brief Element conversions and 4-channel vector accesses shared by the .cu files (each
/// includes its own copy): fp32 or bf16 arrays read and written as fp32 values, 4 adjacent
/// channels in one access (16 bytes of fp32, 8 of bf16; the pointer aligned to that), or one.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace mst::kernels {
namespace {

template <typename T>
__device__ __forceinline__ float toFloat(T v);
template <>
__device__ __forceinline__ float toFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float toFloat<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);  // round to nearest even, as c10::BFloat16 does
}

/// The value a T holds after rounding v to it (what the unfused ops store between kernels).
template <typename T>
__device__ __forceinline__ float roundTo(float v) {
  return toFloat<T>(fromFloat<T>(v));
}

__device__ __forceinline__ void loadVec(const float* p, float (&o)[4]) {
  const float4 r = *reinterpret_cast<const float4*>(p);
  o[0] = r.x;
  o[1] = r.y;
  o[2] = r.z;
  o[3] = r.w;
}
__device__ __forceinline__ void loadVec(const __nv_bfloat16* p, float (&o)[4]) {
  union {
    uint2 raw;
    __nv_bfloat162 pair[2];
  } u;
  u.raw = *reinterpret_cast<const uint2*>(p);
  const float2 a = __bfloat1622float2(u.pair[0]), b = __bfloat1622float2(u.pair[1]);
  o[0] = a.x;
  o[1] = a.y;
  o[2] = b.x;
  o[3] = b.y;
}
template <typename T>
__device__ __forceinline__ void loadVec(const T* p, float (&o)[1]) {
  o[0] = toFloat(*p);
}
__device__ __forceinline__ void storeVec(float* p, const float (&v)[4]) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
}
__device__ __forceinline__ void storeVec(__nv_bfloat16* p, const float (&v)[4]) {
  union {
    uint2 raw;
    __nv_bfloat162 pair[2];
  } u;
  u.pair[0] = __floats2bfloat162_rn(v[0], v[1]);  // round to nearest even, as fromFloat
  u.pair[1] = __floats2bfloat162_rn(v[2], v[3]);
  *reinterpret_cast<uint2*>(p) = u.raw;
}
template <typename T>
__device__ __forceinline__ void storeVec(T* p, const float (&v)[1]) {
  *p = fromFloat<T>(v[0]);
}

}  // namespace
}  // namespace mst::kernels
