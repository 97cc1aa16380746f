// hcgrad errors. Every misuse of the library throws hcgrad::Error (or a subclass) whose message starts
// with the op's name and shows the offending shapes, dtypes or devices, e.g.
//   "matmul: shapes [2,3] and [4,5] cannot be multiplied"
// Checks run before any kernel is dispatched, so a failed op leaves no half-written output behind.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace hcgrad {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error {  // sizes, dims, broadcasting
 public:
  using Error::Error;
};
class DTypeError : public Error {  // wrong or mismatched element types
 public:
  using Error::Error;
};
class DeviceError : public Error {  // tensors on different devices, or a device this build lacks
 public:
  using Error::Error;
};
class IndexError : public Error {  // an index value out of range (embedding ids, targets, dims)
 public:
  using Error::Error;
};
class OutOfMemoryError : public Error {  // an allocation the machine (or the process's limit) cannot give
 public:
  using Error::Error;
};

namespace detail {
// Streams every argument into one string: concat("sum: dim ", 3, " out of range for ", shape).
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}
}  // namespace detail

}  // namespace hcgrad

// HC_CHECK(condition, ErrorType, message parts...): throws ErrorType(concat(parts...)) when the
// condition is false. The parts are only formatted on failure.
#define HC_CHECK(cond, ErrorType, ...)                              \
  do {                                                              \
    if (!(cond)) throw ErrorType(::hcgrad::detail::concat(__VA_ARGS__)); \
  } while (0)
