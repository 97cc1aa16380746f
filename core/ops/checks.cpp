// Input checks shared by the ops. Messages name the op and both operands, e.g.
//   "add: dtypes float32 and float64 differ (shapes [2,3] and [3]); convert one with .to(dtype)"
#include "hcgrad/core/ops.h"

namespace hcgrad {

namespace {
void check_defined(const char* op, const Tensor& t) {
  HC_CHECK(t.defined(), Error, op, ": an input is an undefined tensor (default-constructed Tensor)");
}
}  // namespace

void check_same_device(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a);
  check_defined(op, b);
  HC_CHECK(a.device() == b.device(), DeviceError, op, ": devices ", a.device(), " and ", b.device(),
           " differ (shapes ", a.shape(), " and ", b.shape(), "); move one with .to(device)");
}

void check_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, a);
  check_defined(op, b);
  HC_CHECK(a.dtype() == b.dtype(), DTypeError, op, ": dtypes ", a.dtype(), " and ", b.dtype(), " differ (shapes ",
           a.shape(), " and ", b.shape(), "); convert one with .to(dtype)");
}

void check_floating(const char* op, const Tensor& x) {
  check_defined(op, x);
  HC_CHECK(is_floating(x.dtype()), DTypeError, op, ": expected a floating dtype (float32, float64), got ", x.dtype(),
           " for shape ", x.shape());
}

}  // namespace hcgrad
