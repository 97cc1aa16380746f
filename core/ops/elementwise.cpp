// Elementwise ops: binary arithmetic with broadcasting, the unary table, pow, clamp, comparisons, where.
// Each forward is followed by its backward rule.
#include <limits>

#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

// ---- binary arithmetic ----

const OpName kAdd{"add"};
const OpName kSub{"sub"};
const OpName kMul{"mul"};
const OpName kDiv{"div"};

// out = a (op) b over the broadcast shape. The backward rules below return gradients in that broadcast
// shape; record() sums them down to each input's shape.
Tensor binary_forward(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  check_floating(name, a);
  Shape shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.options());
  HC_KERNEL(binary, out, op, out, broadcast_view(name, a, shape), broadcast_view(name, b, shape));
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, "add", a, b);
  return record(kAdd, out, {a, b}, [](const Tensor& g, const Needs&) { return TensorList{g, g}; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, "sub", a, b);
  return record(kSub, out, {a, b}, [](const Tensor& g, const Needs& need) {
    return TensorList{g, need[1] ? neg(g) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, "mul", a, b);
  // d(ab)/da = b, d(ab)/db = a
  return record(kMul, out, {a, b}, [a = save(a, kMul), b = save(b, kMul)](const Tensor& g, const Needs& need) {
    return TensorList{need[0] ? mul(g, b.get()) : Tensor(), need[1] ? mul(g, a.get()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, "div", a, b);
  // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
  return record(kDiv, out, {a, b}, [a = save(a, kDiv), b = save(b, kDiv)](const Tensor& g, const Needs& need) {
    Tensor bv = b.get();
    return TensorList{need[0] ? div(g, bv) : Tensor(), need[1] ? neg(div(mul(g, a.get()), mul(bv, bv))) : Tensor()};
  });
}

// ---- unary: the table in core/unary_ops.h ----

namespace {

struct UnaryInfo {
  OpName name;
  UnarySaves saves;
  double default_a;  // the parameter's default (PyTorch's), for the ops that take one
};
const UnaryInfo kUnary[] = {
#define HC_UNARY_INFO(name, saves, default_a, forward, vjp) {OpName{#name}, UnarySaves::saves, default_a},
    HC_UNARY_OPS(HC_UNARY_INFO)
#undef HC_UNARY_INFO
};

Tensor unary_op(UnaryOp op, const Tensor& x, double a) {
  const UnaryInfo& info = kUnary[static_cast<int>(op)];
  check_floating(info.name.c_str(), x);
  Tensor y = Tensor::empty(x.shape(), x.options());
  HC_KERNEL(unary, y, op, y, x, a);
  // Keep only what the rule reads: x, y or nothing.
  autograd::SavedTensor xs = info.saves == UnarySaves::X ? save(x, info.name) : autograd::SavedTensor();
  autograd::SavedTensor ys = info.saves == UnarySaves::Y ? save(y, info.name) : autograd::SavedTensor();
  return record(info.name, y, {x}, [op, xs, ys, a](const Tensor& g, const Needs&) {
    Tensor grad = Tensor::empty(g.shape(), g.options());
    HC_KERNEL(unary_backward, grad, op, grad, xs.get(), ys.get(), g, a);
    return TensorList{grad};
  });
}

}  // namespace

// One function per row of the table, with the parameter at its default; the ops with a parameter also take it
// (below).
#define HC_UNARY_FUNCTION(name, saves, default_a, forward, vjp) \
  Tensor name(const Tensor& x) { return unary_op(UnaryOp::name, x, default_a); }
HC_UNARY_OPS(HC_UNARY_FUNCTION)
#undef HC_UNARY_FUNCTION

Tensor leaky_relu(const Tensor& x, double negative_slope) { return unary_op(UnaryOp::leaky_relu, x, negative_slope); }
Tensor elu(const Tensor& x, double alpha) { return unary_op(UnaryOp::elu, x, alpha); }
Tensor softplus(const Tensor& x, double beta) {
  HC_CHECK(beta != 0 && std::isfinite(beta), Error, "softplus: beta must be finite and non-zero, got ", beta);
  return unary_op(UnaryOp::softplus, x, beta);
}

Tensor gelu(const Tensor& x, std::string_view approximate) {
  if (approximate == "none") return gelu(x);
  if (approximate == "tanh") return gelu_tanh(x);
  throw Error(detail::concat("gelu: approximate must be 'none' or 'tanh' (as torch.nn.functional.gelu), got '",
                             approximate, "'"));
}

// ---- pow and clamp: unary ops with a parameter ----

namespace {
const OpName kPow{"pow"};
const OpName kClamp{"clamp"};
}  // namespace

Tensor pow(const Tensor& x, double exponent) {
  check_floating("pow", x);
  Tensor y = Tensor::empty(x.shape(), x.options());
  HC_KERNEL(pow, y, y, x, exponent);
  // d(x^p)/dx = p x^(p-1)
  return record(kPow, y, {x}, [x = save(x, kPow), exponent](const Tensor& g, const Needs&) {
    Tensor grad = Tensor::empty(g.shape(), g.options());
    HC_KERNEL(pow_backward, grad, grad, x.get(), g, exponent);
    return TensorList{grad};
  });
}

// a^b with a tensor exponent (broadcast like any binary op).
//   d/da = b a^(b-1) (0 where b == 0),   d/db = a^b log(a), taken as 0 where a == 0 and b >= 0 (as PyTorch: the limit of
//   a^b log a as a -> 0+, where log(0) = -inf would give 0 * -inf = NaN)
Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Pow, "pow", a, b);
  return record(kPow, out, {a, b},
                [a = save(a, kPow), b = save(b, kPow), y = save(out, kPow)](const Tensor& g, const Needs& need) {
                  const Tensor av = a.get(), bv = b.get();
                  Tensor grad_a, grad_b;
                  if (need[0]) {  // 0 where b == 0 (a^0 is constant), where b a^(b-1) would give 0 * inf at a == 0
                    const Tensor zero = zeros({}, g.options());
                    grad_a = where(eq(bv, zero), zero, g * bv * pow(av, bv - 1.0));
                  }
                  if (need[1]) {
                    const Tensor zero = zeros({}, g.options()), t = g * y.get() * log(av);
                    grad_b = where(eq(av, zero), where(ge(bv, zero), zero, t), t);
                  }
                  return TensorList{grad_a, grad_b};
                });
}

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  check_floating("clamp", x);
  const double lo = min.value_or(-std::numeric_limits<double>::infinity());
  const double hi = max.value_or(std::numeric_limits<double>::infinity());
  HC_CHECK(!(lo > hi), Error, "clamp: min ", lo, " is greater than max ", hi);
  Tensor y = Tensor::empty(x.shape(), x.options());
  HC_KERNEL(clamp, y, y, x, lo, hi);
  // Gradient passes where min <= x <= max, zero where x was clamped.
  return record(kClamp, y, {x}, [x = save(x, kClamp), lo, hi](const Tensor& g, const Needs&) {
    Tensor grad = Tensor::empty(g.shape(), g.options());
    HC_KERNEL(clamp_backward, grad, grad, x.get(), g, lo, hi);
    return TensorList{grad};
  });
}

// ---- comparisons (no gradient) ----

namespace {
Tensor compare_op(CompareOp op, const char* name, const Tensor& a, const Tensor& b) {
  check_same_device(name, a, b);
  check_same_dtype(name, a, b);
  Shape shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, {.dtype = DType::Bool, .device = a.device()});
  HC_KERNEL(compare, out, op, out, broadcast_view(name, a, shape), broadcast_view(name, b, shape));
  return out;
}
}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Eq, "eq", a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Ne, "ne", a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Lt, "lt", a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Le, "le", a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Gt, "gt", a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_op(CompareOp::Ge, "ge", a, b); }

// ---- where / masked_fill ----

namespace {
const OpName kWhere{"where"};
const OpName kMaskedFill{"masked_fill"};
}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  HC_CHECK(cond.dtype() == DType::Bool, DTypeError, "where: condition must be bool, got ", cond.dtype(), " for shape ",
           cond.shape());
  check_same_device("where", cond, a);
  check_same_device("where", a, b);
  check_same_dtype("where", a, b);
  Shape shape = broadcast_shapes("where", broadcast_shapes("where", cond.shape(), a.shape()), b.shape());
  Tensor out = Tensor::empty(shape, a.options());
  Tensor c = broadcast_view("where", cond, shape);
  HC_KERNEL(where, out, out, c, broadcast_view("where", a, shape), broadcast_view("where", b, shape));
  // The gradient goes to a where cond holds and to b elsewhere.
  return record(kWhere, out, {a, b}, [c](const Tensor& g, const Needs& need) {
    Tensor zero = zeros({}, g.options());
    return TensorList{need[0] ? where(c, g, zero) : Tensor(), need[1] ? where(c, zero, g) : Tensor()};
  });
}

namespace {
const OpName kMaximum{"maximum"};
const OpName kMinimum{"minimum"};

// maximum (larger) or minimum: computed with compare and where on the detached inputs, recorded as one op.
Tensor extremum(const OpName& name, const Tensor& a, const Tensor& b, bool larger) {
  check_floating(name.c_str(), a);
  check_same_device(name.c_str(), a, b);
  check_same_dtype(name.c_str(), a, b);
  const Tensor ad = a.detach(), bd = b.detach();
  const Tensor picks_a = larger ? gt(ad, bd) : lt(ad, bd), tie = eq(ad, bd);
  // A NaN in b fails the comparison and is picked; a NaN in a is picked by the outer where.
  Tensor out = where(ne(ad, ad), ad, where(picks_a, ad, bd));
  return record(name, out, {a, b}, [picks_a, tie](const Tensor& g, const Needs& need) {
    const Tensor zero = zeros({}, g.options()), half = g * 0.5;
    return TensorList{need[0] ? where(picks_a, g, where(tie, half, zero)) : Tensor(),
                      need[1] ? where(picks_a, zero, where(tie, half, g)) : Tensor()};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(kMaximum, a, b, /*larger=*/true); }
Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(kMinimum, a, b, /*larger=*/false); }

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  HC_CHECK(mask.dtype() == DType::Bool, DTypeError, "masked_fill: mask must be bool, got ", mask.dtype(),
           " for shape ", mask.shape());
  check_same_device("masked_fill", x, mask);
  Tensor m = broadcast_view("masked_fill", mask, x.shape());
  Tensor out = Tensor::empty(x.shape(), x.options());
  HC_KERNEL(where, out, out, m, broadcast_view("masked_fill", scalar_tensor(value, x.options()), x.shape()), x);
  // The filled places are constants: their gradient is zero.
  return record(kMaskedFill, out, {x}, [m](const Tensor& g, const Needs&) {
    return TensorList{where(m, zeros({}, g.options()), g)};
  });
}

}  // namespace hcgrad
