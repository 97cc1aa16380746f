// From a runtime dtype to a C++ type: dispatch_floating("exp", x.dtype(), [&]<class T>() { ... T ... });
// The lambda is instantiated once per type; an unsupported dtype throws a DTypeError naming the op.
#pragma once

#include <cstdint>
#include <utility>

#include "hcgrad/core/dtype.h"
#include "hcgrad/core/error.h"

namespace hcgrad {

template <class F>
decltype(auto) dispatch_floating(const char* op, DType dtype, F&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    default: throw DTypeError(detail::concat(op, ": expected a floating dtype (float32, float64), got ", dtype));
  }
}

template <class F>
decltype(auto) dispatch_all(const char* op, DType dtype, F&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::Int64: return fn.template operator()<int64_t>();
    case DType::Bool: return fn.template operator()<bool>();
  }
  throw DTypeError(detail::concat(op, ": unknown dtype"));
}

}  // namespace hcgrad
