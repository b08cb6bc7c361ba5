// CPU copy-family kernels: fill and copy-with-cast over any strides.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "backend/backends.h"
#include "backend/cpu/strided_loop.h"
#include "orchard/parallel.h"
#include "orchard/tensor.h"

namespace orchard::backend {

namespace {

template <class T>
constexpr bool is_half_float = std::is_same_v<T, BFloat16> || std::is_same_v<T, Float16>;

// Numeric cast between any two storage types; 16-bit floats go through float.
template <class Dst, class Src>
Dst convert(Src value) {
  if constexpr (std::is_same_v<Dst, Src>) {
    return value;
  } else if constexpr (is_half_float<Src>) {
    return convert<Dst>(static_cast<float>(value));
  } else if constexpr (std::is_same_v<Dst, bool>) {
    return value != Src{0};
  } else if constexpr (is_half_float<Dst>) {
    return Dst(static_cast<float>(value));
  } else {
    return static_cast<Dst>(value);
  }
}

// float32 -> bfloat16 as BFloat16's constructor does it, written branch-free so it vectorizes.
void float_to_bfloat16(const float* in, BFloat16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t f = float_bits(in[i]);
    const auto rounded = static_cast<uint16_t>((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
    const auto quiet_nan = static_cast<uint16_t>((f >> 16) | 0x40u);
    out[i].bits = (f & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
  }
}

// A contiguous cast, split over threads in fixed blocks (no result depends on the split).
template <class Dst, class Src>
void convert_contiguous(const Src* in, Dst* out, int64_t n) {
  constexpr int64_t kBlock = 1 << 15;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock;
    const int64_t count = std::min(kBlock, n - begin);
    if constexpr (std::is_same_v<Dst, BFloat16> && std::is_same_v<Src, float>) {
      float_to_bfloat16(in + begin, out + begin, count);
    } else {
      for (int64_t i = begin; i < begin + count; ++i) out[i] = convert<Dst>(in[i]);
    }
  }
}

template <class Dst, class Src>
void copy_typed(const Tensor& src, const Tensor& dst) {
  auto* out = static_cast<Dst*>(dst.data_ptr());
  const auto* in = static_cast<const Src*>(src.data_ptr());
  if (src.is_contiguous() && dst.is_contiguous() && src.strides() == dst.strides()) {
    const int64_t n = dst.numel();
    if constexpr (std::is_same_v<Dst, Src>) {
      if (n > 0) std::memcpy(out, in, static_cast<size_t>(n) * sizeof(Dst));  // empty: maybe no memory
    } else {
      convert_contiguous(in, out, n);
    }
    return;
  }
  cpu::for_each_row(dst.shape(), dst.strides(), src.strides(),
                    [&](int64_t d, int64_t s, int64_t count, int64_t d_step, int64_t s_step) {
                      for (int64_t i = 0; i < count; ++i)
                        out[d + i * d_step] = convert<Dst>(in[s + i * s_step]);
                    });
}

class CpuCopyKernels final : public CopyKernels {
 public:
  void fill(const Tensor& dst, const Scalar& value) const override {
    visit_dtype(dst.dtype(), [&](auto tag) {
      using T = decltype(tag);
      const T v = value.to<T>();
      auto* out = static_cast<T*>(dst.data_ptr());
      if (dst.is_contiguous()) {
        std::fill_n(out, dst.numel(), v);
        return;
      }
      cpu::for_each_row(dst.shape(), dst.strides(), dst.strides(),
                        [&](int64_t d, int64_t, int64_t count, int64_t step, int64_t) {
                          for (int64_t i = 0; i < count; ++i) out[d + i * step] = v;
                        });
    });
  }

  void copy(const Tensor& src, const Tensor& dst) const override {
    visit_dtype(dst.dtype(), [&](auto dst_tag) {
      visit_dtype(src.dtype(),
                  [&](auto src_tag) { copy_typed<decltype(dst_tag), decltype(src_tag)>(src, dst); });
    });
  }
};

}  // namespace

const CopyKernels& cpu_copy_kernels() {
  static const CpuCopyKernels kernels;
  return kernels;
}

}  // namespace orchard::backend
