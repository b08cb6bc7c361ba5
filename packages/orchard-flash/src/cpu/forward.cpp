// FlashAttention forward on the CPU: for each block of query rows, stream over blocks of
// keys, keeping a running row max and sum (online softmax), so memory is O(block * dim).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention.h"

namespace orchard::flash {

namespace {

constexpr int64_t kBlockQ = 64;
constexpr int64_t kBlockK = 64;

// Element (b, h, row, col) of a 4-d tensor with any strides.
template <class T>
struct Strided4 {
  const T* data;
  int64_t s0, s1, s2, s3;
  explicit Strided4(const Tensor& t)
      : data(static_cast<const T*>(t.data_ptr())),
        s0(t.stride(0)),
        s1(t.stride(1)),
        s2(t.stride(2)),
        s3(t.stride(3)) {}
  const T* row(int64_t b, int64_t h, int64_t r) const { return data + b * s0 + h * s1 + r * s2; }
};

// Scratch for one block of query rows, reused across the blocks a thread takes.
template <class T>
struct Scratch {
  std::vector<T> q, kt, v, s, o, m, l;
  explicit Scratch(int64_t dim)
      : q(kBlockQ * dim),
        kt(dim * kBlockK),
        v(kBlockK * dim),
        s(kBlockQ * kBlockK),
        o(kBlockQ * dim),
        m(kBlockQ),
        l(kBlockQ) {}
};

template <class T>
void forward_block(const AttentionShape& sh, const Strided4<T>& q, const Strided4<T>& k, const Strided4<T>& v,
                   T* out, T* lse, int64_t b, int64_t h, int64_t q0, Scratch<T>& w) {
  const int64_t dim = sh.dim;
  const int64_t rows = std::min(kBlockQ, sh.len_q - q0);
  const int64_t hk = h / (sh.heads / sh.heads_kv);
  const T scale = static_cast<T>(sh.scale);
  for (int64_t i = 0; i < rows; ++i) {
    const T* src = q.row(b, h, q0 + i);
    for (int64_t d = 0; d < dim; ++d) w.q[i * dim + d] = src[d * q.s3] * scale;
  }
  std::fill(w.o.begin(), w.o.end(), T(0));
  std::fill(w.m.begin(), w.m.end(), -std::numeric_limits<T>::infinity());
  std::fill(w.l.begin(), w.l.end(), T(0));
  // Keys past the last row's causal limit are never seen by this block.
  int64_t key_end = sh.len_k;
  if (sh.causal) key_end = std::clamp<int64_t>(q0 + rows - 1 + sh.causal_offset + 1, 0, sh.len_k);
  for (int64_t k0 = 0; k0 < key_end; k0 += kBlockK) {
    const int64_t cols = std::min(kBlockK, key_end - k0);
    for (int64_t j = 0; j < cols; ++j) {
      const T* krow = k.row(b, hk, k0 + j);
      const T* vrow = v.row(b, hk, k0 + j);
      for (int64_t d = 0; d < dim; ++d) {
        w.kt[d * kBlockK + j] = krow[d * k.s3];
        w.v[j * dim + d] = vrow[d * v.s3];
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      T* s = w.s.data() + i * kBlockK;
      std::fill(s, s + cols, T(0));
      for (int64_t d = 0; d < dim; ++d) {
        const T qd = w.q[i * dim + d];
        const T* kt = w.kt.data() + d * kBlockK;
        for (int64_t j = 0; j < cols; ++j) s[j] += qd * kt[j];
      }
      // Keys this row may not see: j > row + offset.
      const int64_t limit = sh.causal ? q0 + i + sh.causal_offset - k0 : cols - 1;
      const int64_t visible = std::clamp<int64_t>(limit + 1, 0, cols);
      if (visible == 0) continue;
      T block_max = s[0];
      for (int64_t j = 1; j < visible; ++j) block_max = std::max(block_max, s[j]);
      const T m_new = std::max(w.m[i], block_max);
      const T alpha = std::exp(w.m[i] - m_new);  // 0 on the first visible block
      T sum = 0;
      for (int64_t j = 0; j < visible; ++j) {
        s[j] = std::exp(s[j] - m_new);
        sum += s[j];
      }
      w.l[i] = w.l[i] * alpha + sum;
      w.m[i] = m_new;
      T* o = w.o.data() + i * dim;
      for (int64_t d = 0; d < dim; ++d) o[d] *= alpha;
      for (int64_t j = 0; j < visible; ++j) {
        const T p = s[j];
        const T* vj = w.v.data() + j * dim;
        for (int64_t d = 0; d < dim; ++d) o[d] += p * vj[d];
      }
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t row = (b * sh.heads + h) * sh.len_q + q0 + i;
    const T l = w.l[i];
    // A row that sees no key (causal, more queries than keys) is zeros, with lse -inf.
    const T inv = l > 0 ? T(1) / l : T(0);
    for (int64_t d = 0; d < dim; ++d) out[row * dim + d] = w.o[i * dim + d] * inv;
    lse[row] = l > 0 ? w.m[i] + std::log(l) : -std::numeric_limits<T>::infinity();
  }
}

template <class T>
ForwardResult forward_typed(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& sh) {
  const DType dtype = q.dtype();
  ForwardResult result{Tensor::empty({sh.batch, sh.heads, sh.len_q, sh.dim}, dtype, q.device()),
                       Tensor::empty({sh.batch, sh.heads, sh.len_q}, dtype, q.device())};
  T* out = static_cast<T*>(result.out.data_ptr());
  T* lse = static_cast<T*>(result.lse.data_ptr());
  const Strided4<T> qs(q), ks(k), vs(v);
  const int64_t q_blocks = (sh.len_q + kBlockQ - 1) / kBlockQ;
  const int64_t items = sh.batch * sh.heads * q_blocks;
#pragma omp parallel
  {
    Scratch<T> scratch(sh.dim);
    // Causal blocks differ in cost: hand them out one at a time.
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t qb = item % q_blocks;
      const int64_t bh = item / q_blocks;
      forward_block<T>(sh, qs, ks, vs, out, lse, bh / sh.heads, bh % sh.heads, qb * kBlockQ, scratch);
    }
  }
  return result;
}

}  // namespace

ForwardResult forward_cpu(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionShape& shape) {
  if (q.dtype() == DType::Float64) return forward_typed<double>(q, k, v, shape);
  return forward_typed<float>(q, k, v, shape);
}

}  // namespace orchard::flash
