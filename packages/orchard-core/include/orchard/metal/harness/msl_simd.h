// Barriers and SIMD-group functions for the harness (msl_prelude.h). Each is a synchronisation
// point of the executor: threadgroup_barrier waits for the whole threadgroup, a SIMD-group
// function for every lane of its SIMD-group at the same call site, where each lane posts its
// value and then reads the others'. SIMD-group functions in divergent control flow (some lanes
// elsewhere, or returned) are an error here, stricter than Metal's active-lane semantics.
#pragma once

namespace metal {

namespace detail {

namespace harness = ::orchard::metal::harness;

// The lanes' posted values of one exchange: lane i's at i * sizeof(T).
template <class T>
struct lane_values {
  const std::byte* data;
  harness::SimdPosition at;
  T operator[](uint32_t i) const {
    T v;
    std::memcpy(&v, data + size_t{i} * sizeof(T), sizeof(T));
    return v;
  }
};

template <class T>
lane_values<T> exchange(const T& value, const call_site& site) {
  static_assert(std::is_trivially_copyable_v<T>, "SIMD-group functions exchange plain values");
  lane_values<T> out;
  out.data = harness::simd_exchange(&value, sizeof(T), site, out.at);
  return out;
}

template <class T, class F>
T simd_fold(const T& value, const call_site& site, F combine) {
  const lane_values<T> all = exchange(value, site);
  T acc = all[0];
  for (uint32_t i = 1; i < all.at.lanes; ++i) acc = combine(acc, all[i]);
  return acc;
}

// The value of lane `from`, or the caller's own where `from` is out of range (as Metal leaves it).
template <class T>
T simd_pick(const T& value, const call_site& site,
            int64_t (*pick)(uint32_t lane, uint32_t lanes, int64_t arg), int64_t arg) {
  const lane_values<T> all = exchange(value, site);
  const int64_t from = pick(all.at.lane, all.at.lanes, arg);
  return from < 0 ? value : all[static_cast<uint32_t>(from)];
}
inline int64_t lane_xor(uint32_t lane, uint32_t lanes, int64_t mask) {
  const int64_t to = lane ^ mask;
  return to < lanes ? to : -1;
}
inline int64_t lane_down(uint32_t lane, uint32_t lanes, int64_t delta) {
  return lane + delta < lanes ? lane + delta : -1;
}
inline int64_t lane_up(uint32_t lane, uint32_t, int64_t delta) { return lane >= delta ? lane - delta : -1; }
inline int64_t lane_at(uint32_t, uint32_t lanes, int64_t index) {
  return index >= 0 && index < lanes ? index : -1;
}

template <class T>
T simd_prefix(const T& value, const call_site& site, bool inclusive) {
  const lane_values<T> all = exchange(value, site);
  T acc = T(0);
  for (uint32_t i = 0; i < all.at.lane + (inclusive ? 1 : 0); ++i) acc = T(acc + all[i]);
  return acc;
}

}  // namespace detail

inline void threadgroup_barrier(mem_flags = mem_flags::mem_none, call_site site = {}) {
  ::orchard::metal::harness::barrier(site);
}
// Synchronises the SIMD-group (all lanes must reach it), which a real SIMD-group does for free.
inline void simdgroup_barrier(mem_flags = mem_flags::mem_none, call_site site = {}) {
  detail::harness::SimdPosition at;
  detail::harness::simd_exchange(nullptr, 0, site, at);
}

template <class T>
T simd_sum(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return T(a + b); });
}
template <class T>
T simd_product(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return T(a * b); });
}
template <class T>
T simd_max(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return max(a, b); });
}
template <class T>
T simd_min(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return min(a, b); });
}
template <class T>
T simd_and(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return T(a & b); });
}
template <class T>
T simd_or(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return T(a | b); });
}
template <class T>
T simd_xor(T x, call_site site = {}) {
  return detail::simd_fold(x, site, [](T a, T b) { return T(a ^ b); });
}
template <class T>
T simd_prefix_inclusive_sum(T x, call_site site = {}) {
  return detail::simd_prefix(x, site, true);
}
template <class T>
T simd_prefix_exclusive_sum(T x, call_site site = {}) {
  return detail::simd_prefix(x, site, false);
}
template <class T, class I>
T simd_shuffle(T x, I lane, call_site site = {}) {
  return detail::simd_pick(x, site, detail::lane_at, int64_t(lane));
}
template <class T, class I>
T simd_broadcast(T x, I lane, call_site site = {}) {
  return detail::simd_pick(x, site, detail::lane_at, int64_t(lane));
}
template <class T>
T simd_broadcast_first(T x, call_site site = {}) {
  return detail::simd_pick(x, site, detail::lane_at, 0);
}
template <class T, class I>
T simd_shuffle_xor(T x, I mask, call_site site = {}) {
  return detail::simd_pick(x, site, detail::lane_xor, int64_t(mask));
}
template <class T, class I>
T simd_shuffle_down(T x, I delta, call_site site = {}) {
  return detail::simd_pick(x, site, detail::lane_down, int64_t(delta));
}
template <class T, class I>
T simd_shuffle_up(T x, I delta, call_site site = {}) {
  return detail::simd_pick(x, site, detail::lane_up, int64_t(delta));
}

inline bool simd_all(bool x, call_site site = {}) {
  return detail::simd_fold(x, site, [](bool a, bool b) { return a && b; });
}
inline bool simd_any(bool x, call_site site = {}) {
  return detail::simd_fold(x, site, [](bool a, bool b) { return a || b; });
}

// simd_ballot's result: bit i set where lane i's predicate holds.
struct simd_vote {
  using vote_t = ulong;
  vote_t bits = 0;
  explicit constexpr operator vote_t() const { return bits; }
  bool all() const { return bits == mask; }
  bool any() const { return bits != 0; }
  vote_t mask = 0;  // the lanes of this SIMD-group
};
inline simd_vote simd_ballot(bool x, call_site site = {}) {
  const detail::lane_values<bool> all = detail::exchange(x, site);
  simd_vote vote;
  for (uint32_t i = 0; i < all.at.lanes; ++i) {
    vote.mask |= simd_vote::vote_t{1} << i;
    if (all[i]) vote.bits |= simd_vote::vote_t{1} << i;
  }
  return vote;
}

}  // namespace metal
