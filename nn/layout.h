// Shape helpers shared by the connection modules: the middle dims of a [rows, N*, D] residual, building a
// shape around them, and moving the features of a channel-first tensor ([B, D, N*]) to the end and back.
#pragma once

#include <initializer_list>

#include "hcgrad/core/tensor.h"

namespace hcgrad::nn::layout {

// The middle dims N* of a [rows, N*..., D] tensor.
inline Shape middle_dims(const Tensor& t) { return Shape(t.shape().begin() + 1, t.shape().end() - 1); }

// head ++ middle ++ tail, e.g. concat_shape({B}, N*, {D}) = [B, N*..., D].
inline Shape concat_shape(std::initializer_list<int64_t> head, const Shape& middle, std::initializer_list<int64_t> tail) {
  Shape out(head);
  out.insert(out.end(), middle.begin(), middle.end());
  out.insert(out.end(), tail);
  return out;
}

// [B, D, N*] -> [B, N*, D] (a view): dim 1 moves to the end.
inline Tensor features_last(const Tensor& t) {
  Shape order{0};
  for (int64_t i = 2; i < t.dim(); ++i) order.push_back(i);
  order.push_back(1);
  return t.permute(order);
}

// The inverse for at = 1: the last dim moves to position `at` ([V, B, N*, D] -> [V, B, D, N*] with at = 2).
inline Tensor features_first(const Tensor& t, int64_t at = 1) {
  Shape order;
  for (int64_t i = 0; i < t.dim() - 1; ++i) {
    if (i == at) order.push_back(t.dim() - 1);
    order.push_back(i);
  }
  return t.permute(order);
}

}  // namespace hcgrad::nn::layout
