// The elementwise loop behind every map-like CPU kernel (unary, binary, compare, where, copy).
//
// map_kernel<Out, In...>(out, f, in...) sets out[i] = f(in[i]...) for every index i of out's shape.
// The inputs must already have out's shape (broadcast inputs are stride-0 views, see broadcast_view), and
// any of the tensors may be non-contiguous. Steps:
//   1. coalesce: merge dims that are contiguous for every operand, so contiguous tensors become 1-d;
//   2. split the flat index range into chunks for oneTBB (large tensors only);
//   3. walk each chunk along the innermost dim, with a plain pointer loop the compiler vectorises when
//      all operands are contiguous there.
#pragma once

#include <array>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad::cpu {

template <size_t N>
using BytePtrs = std::array<char*, N>;
template <size_t N>
using ByteSteps = std::array<int64_t, N>;

// Calls inner(ptrs, n, steps) for runs of n elements along the innermost dim, where ptrs point at each
// operand's first element of the run and steps are each operand's byte stride along it.
// `shape` and `byte_strides` describe the iteration space; chunks run in parallel when it is large.
template <size_t N, class Inner>
void strided_for(Shape shape, std::array<Strides, N> byte_strides, const BytePtrs<N>& base, const Inner& inner) {
  coalesce_dims<N>(shape, byte_strides);
  const int64_t ndim = shape.ndim(), total = numel(shape);
  const int64_t inner_size = shape[ndim - 1];
  ByteSteps<N> steps;
  for (size_t k = 0; k < N; ++k) steps[k] = byte_strides[k][ndim - 1];

  parallel_for(0, total, kGrain, [&](int64_t begin, int64_t end) {
    // Multi-index of `begin`, and each operand's pointer there.
    std::vector<int64_t> index(ndim);
    BytePtrs<N> ptrs = base;
    for (int64_t d = ndim - 1, rest = begin; d >= 0; --d) {
      index[d] = rest % shape[d];
      rest /= shape[d];
      for (size_t k = 0; k < N; ++k) ptrs[k] += index[d] * byte_strides[k][d];
    }
    for (int64_t i = begin; i < end;) {
      int64_t n = std::min(inner_size - index[ndim - 1], end - i);
      inner(ptrs, n, steps);
      i += n;
      // Advance by n along the innermost dim, carrying into outer dims like an odometer.
      index[ndim - 1] += n;
      for (size_t k = 0; k < N; ++k) ptrs[k] += n * steps[k];
      for (int64_t d = ndim - 1; d > 0 && index[d] == shape[d]; --d) {
        index[d] = 0;
        ++index[d - 1];
        for (size_t k = 0; k < N; ++k) ptrs[k] += byte_strides[k][d - 1] - shape[d] * byte_strides[k][d];
      }
    }
  });
}

template <size_t N>
std::array<Strides, N> byte_strides_of(const std::array<const Tensor*, N>& tensors) {
  std::array<Strides, N> out;
  for (size_t k = 0; k < N; ++k) {
    out[k] = tensors[k]->strides();
    for (int64_t& s : out[k]) s *= static_cast<int64_t>(itemsize(tensors[k]->dtype()));
  }
  return out;
}

namespace detail {
template <class>
using TensorRef = const Tensor&;  // one `const Tensor&` parameter per input type

template <class Out, class... In, class F, size_t... I>
void map_run(const F& f, const BytePtrs<1 + sizeof...(In)>& p, int64_t n, const ByteSteps<1 + sizeof...(In)>& s,
             std::index_sequence<I...>) {
  const bool contiguous = s[0] == sizeof(Out) && ((s[I + 1] == static_cast<int64_t>(sizeof(In))) && ...);
  if (contiguous) {  // typed pointers, unit stride: vectorisable
    Out* out = reinterpret_cast<Out*>(p[0]);
    std::tuple<const In*...> in{reinterpret_cast<const In*>(p[I + 1])...};
    for (int64_t i = 0; i < n; ++i) out[i] = f(std::get<I>(in)[i]...);
  } else {
    for (int64_t i = 0; i < n; ++i)
      *reinterpret_cast<Out*>(p[0] + i * s[0]) = f(*reinterpret_cast<const In*>(p[I + 1] + i * s[I + 1])...);
  }
}
}  // namespace detail

// out[i] = f(in[i]...), all tensors of out's shape (inputs broadcast as stride-0 views). Types must
// match the dtypes; callers dispatch on dtype first.
template <class Out, class... In, class F>
void map_kernel(const Tensor& out, const F& f, detail::TensorRef<In>... in) {
  constexpr size_t N = 1 + sizeof...(In);
  std::array<const Tensor*, N> tensors{&out, &in...};
  BytePtrs<N> base{static_cast<char*>(out.raw_data()), static_cast<char*>(in.raw_data())...};
  strided_for<N>(out.shape(), byte_strides_of<N>(tensors), base,
                 [&](const BytePtrs<N>& p, int64_t n, const ByteSteps<N>& s) {
                   detail::map_run<Out, In...>(f, p, n, s, std::index_sequence_for<In...>{});
                 });
}

}  // namespace hcgrad::cpu
