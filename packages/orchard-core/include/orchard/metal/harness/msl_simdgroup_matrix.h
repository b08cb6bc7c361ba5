// simdgroup_matrix for the harness (msl_prelude.h): 8x8 matrices a SIMD-group holds together,
// and the functions that load, store and multiply them, each a SIMD-group collective (every
// lane calls it at one call site). Here every lane keeps a copy of the whole matrix; a function
// splits its elements among the lanes (lane l takes the l-th run of ceil(64 / lanes) elements),
// each lane reads or computes its share, the lanes exchange shares, and every lane copies the
// result. The hardware's
// element-to-lane layout is not modelled, so thread_elements() is not offered.
#pragma once

namespace metal {

template <class T, int Cols, int Rows>
struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the harness has 8x8 simdgroup matrices only");
  static constexpr int size = Cols * Rows;
  T elements[size];  // row-major

  // Metal leaves a matrix undefined until written: NaN here, so reading one shows.
  simdgroup_matrix() {
    for (T& e : elements) e = numeric_limits<T>::quiet_NaN();
  }
  // A diagonal matrix, as Metal's simdgroup_matrix(T).
  explicit simdgroup_matrix(T diagonal) {
    for (int i = 0; i < size; ++i) elements[i] = i / Cols == i % Cols ? diagonal : T(0);
  }
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

namespace detail {

// One lane's share of a matrix: elements [begin, end). The lanes' shares, posted side by side,
// are the matrix in element order.
template <class T, int N>
struct matrix_share {
  harness::SimdPosition at = harness::simd_position();
  int per_lane = (N + static_cast<int>(at.lanes) - 1) / static_cast<int>(at.lanes);
  int begin = std::min(N, static_cast<int>(at.lane) * per_lane);
  int end = std::min(N, begin + per_lane);
  T values[N];  // values[e - begin] for e in [begin, end)

  // Posts this lane's share and copies the whole matrix, every lane's share, into `out`.
  void exchange(T* out, const call_site& site) {
    harness::SimdPosition all_at;
    const std::byte* all = harness::simd_exchange(values, per_lane * sizeof(T), site, all_at);
    std::memcpy(out, all, N * sizeof(T));
  }
};

}  // namespace detail

// Reads the matrix whose element (row r, column c) is src[(origin.y + r) * elements_per_row +
// origin.x + c], or, transposed, src[(origin.y + c) * elements_per_row + origin.x + r].
template <class T, int C, int R, class S, class O = ulong2>
void simdgroup_load(simdgroup_matrix<T, C, R>& d, const S* src, ulong elements_per_row = C,
                    O matrix_origin = O{0, 0}, bool transpose_matrix = false, call_site site = {}) {
  detail::matrix_share<T, C * R> share;
  const ulong x0 = matrix_origin[0], y0 = matrix_origin[1];
  for (int e = share.begin; e < share.end; ++e) {
    const ulong r = e / C, c = e % C;
    share.values[e - share.begin] = T(transpose_matrix ? src[(y0 + c) * elements_per_row + x0 + r]
                                                       : src[(y0 + r) * elements_per_row + x0 + c]);
  }
  share.exchange(d.elements, site);
}

// Writes the matrix where simdgroup_load with the same arguments reads it.
template <class T, int C, int R, class D, class O = ulong2>
void simdgroup_store(const simdgroup_matrix<T, C, R>& a, D* dst, ulong elements_per_row = C,
                     O matrix_origin = O{0, 0}, bool transpose_matrix = false, call_site site = {}) {
  detail::matrix_share<T, C * R> share;  // this lane writes its share
  const ulong x0 = matrix_origin[0], y0 = matrix_origin[1];
  for (int e = share.begin; e < share.end; ++e) {
    const ulong r = e / C, c = e % C;
    (transpose_matrix ? dst[(y0 + c) * elements_per_row + x0 + r]
                      : dst[(y0 + r) * elements_per_row + x0 + c]) = D(a.elements[e]);
  }
  detail::harness::SimdPosition all_at;
  detail::harness::simd_exchange(nullptr, 0, site, all_at);
}

// d = a * b + c, each element accumulated in float in order of k.
template <class TD, class TA, class TB, class TC, int N>
void simdgroup_multiply_accumulate(simdgroup_matrix<TD, N, N>& d, const simdgroup_matrix<TA, N, N>& a,
                                   const simdgroup_matrix<TB, N, N>& b, const simdgroup_matrix<TC, N, N>& c,
                                   call_site site = {}) {
  detail::matrix_share<TD, N * N> share;
  for (int e = share.begin; e < share.end; ++e) {
    const int r = e / N, col = e % N;
    float sum = float(c.elements[e]);
    for (int i = 0; i < N; ++i)
      sum = std::fma(float(a.elements[r * N + i]), float(b.elements[i * N + col]), sum);
    share.values[e - share.begin] = TD(sum);
  }
  share.exchange(d.elements, site);
}

template <class TD, class TA, class TB, int N>
void simdgroup_multiply(simdgroup_matrix<TD, N, N>& d, const simdgroup_matrix<TA, N, N>& a,
                        const simdgroup_matrix<TB, N, N>& b, call_site site = {}) {
  simdgroup_multiply_accumulate(d, a, b, simdgroup_matrix<TD, N, N>(TD(0)), site);
}

// A matrix filled with `value`; where lanes pass different values, each lane's fills its share.
template <class T, int C, int R>
simdgroup_matrix<T, C, R> make_filled_simdgroup_matrix(T value, call_site site = {}) {
  detail::matrix_share<T, C * R> share;
  for (int k = 0; k < share.per_lane; ++k) share.values[k] = value;
  simdgroup_matrix<T, C, R> out(T(0));
  share.exchange(out.elements, site);
  return out;
}

}  // namespace metal
