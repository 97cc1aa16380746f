// Short rows in vector registers: dot products and weighted sums of rows of a few dozen to a few hundred
// values, where Eigen's dynamic-size expressions spend as long on their alignment prologue as on the work.
// The fused hyper-connection kernels (core/cpu/hc_step.cpp) are built from these.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

namespace hcgrad::cpu::short_rows {

constexpr int64_t kLanes = 16;  // the vector blocks of dot() and combine(): one AVX-512 register of floats

// The sum of one Lanes accumulator: Eigen's vector reduction for float (a scalar sum of 16 lanes cost twice the
// FMAs of a 128-wide dot product), scalar code for double (Eigen's double reduction trips GCC 12's
// -Wuninitialized).
template <class T, class Lanes>
T lane_sum(const Lanes& acc) {
  if constexpr (std::is_same_v<T, float>) return acc.sum();
  T lanes[kLanes];
  Eigen::Map<Lanes> lane_view(lanes);
  lane_view = acc;
  T sum = 0;
  for (int64_t l = 0; l < kLanes; ++l) sum += lanes[l];
  return sum;
}

// a · b over n elements: kLanes partial sums in a fixed-size Eigen array (vector registers, unaligned loads)
// and one horizontal sum at the end. Eigen's dynamic-size dot peels a scalar prologue up to the next
// alignment boundary first, which at the rows' d = 32..128 cost as much as the vector part.
template <class T>
T dot(const T* a, const T* b, int64_t n) {
  using Lanes = Eigen::Array<T, kLanes, 1>;
  Lanes acc = Lanes::Zero();
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) acc += Eigen::Map<const Lanes>(a + k) * Eigen::Map<const Lanes>(b + k);
  T sum = lane_sum<T>(acc);
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// out[j] = a · bs[j] for j < J in one pass over a, with J (known at compile time) vector accumulators that
// stay in registers: a row's norm and its M projections, or one gradient row against the R stream rows.
template <int J, class T>
void dots_fixed(const T* a, const T* const* bs, int64_t n, T* out) {
  using Lanes = Eigen::Array<T, kLanes, 1>;
  Lanes acc[J];
  for (int j = 0; j < J; ++j) acc[j].setZero();
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    const Lanes av = Eigen::Map<const Lanes>(a + k);
    for (int j = 0; j < J; ++j) acc[j] += av * Eigen::Map<const Lanes>(bs[j] + k);
  }
  for (int j = 0; j < J; ++j) {
    T sum = lane_sum<T>(acc[j]);
    for (int64_t kk = k; kk < n; ++kk) sum += a[kk] * bs[j][kk];
    out[j] = sum;
  }
}

template <class T>
void dots(const T* a, const T* const* bs, int64_t J, int64_t n, T* out) {
  int64_t j0 = 0;
  for (; J - j0 >= 8; j0 += 8) dots_fixed<8>(a, bs + j0, n, out + j0);
  switch (J - j0) {
    case 1: dots_fixed<1>(a, bs + j0, n, out + j0); break;
    case 2: dots_fixed<2>(a, bs + j0, n, out + j0); break;
    case 3: dots_fixed<3>(a, bs + j0, n, out + j0); break;
    case 4: dots_fixed<4>(a, bs + j0, n, out + j0); break;
    case 5: dots_fixed<5>(a, bs + j0, n, out + j0); break;
    case 6: dots_fixed<6>(a, bs + j0, n, out + j0); break;
    case 7: dots_fixed<7>(a, bs + j0, n, out + j0); break;
    default: break;
  }
}

// out[k] (+)= Σ_i coefs[i] · srcs[i][k] for k < n: a block of kLanes outputs stays in registers while every
// term is added, so each output is written once (not once per term, as a chain of axpys would).
template <class T>
void combine(T* __restrict out, const T* const* srcs, const T* coefs, int64_t terms, int64_t n, bool accumulate) {
  using Lanes = Eigen::Array<T, kLanes, 1>;  // fixed size: Eigen keeps it in vector registers
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    Lanes acc = accumulate ? Lanes(Eigen::Map<const Lanes>(out + k)) : Lanes::Zero();
    for (int64_t i = 0; i < terms; ++i) acc += coefs[i] * Eigen::Map<const Lanes>(srcs[i] + k);
    Eigen::Map<Lanes>(out + k) = acc;
  }
  for (; k < n; ++k) {
    T acc = accumulate ? out[k] : T(0);
    for (int64_t i = 0; i < terms; ++i) acc += coefs[i] * srcs[i][k];
    out[k] = acc;
  }
}

// The terms of one combine(), gathered per output row (at most R + M + 1 of them).
template <class T>
struct Terms {
  std::vector<const T*> srcs;
  std::vector<T> coefs;
  void clear() {
    srcs.clear();
    coefs.clear();
  }
  void add(T c, const T* src) {
    srcs.push_back(src);
    coefs.push_back(c);
  }
  void write(T* out, int64_t n, bool accumulate = false) const {
    combine(out, srcs.data(), coefs.data(), static_cast<int64_t>(srcs.size()), n, accumulate);
  }
};

}  // namespace hcgrad::cpu::short_rows
