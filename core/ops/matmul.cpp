// matmul: [..., n, k] @ [..., k, m] -> [..., n, m] with broadcast batch dims (torch.matmul semantics).
//   backward: dA = dC @ B^T,  dB = A^T @ dC   (then summed over broadcast batch dims by record())
// B^T and A^T are transposed views: the GEMM kernel reads them in place.
// linear: x [..., in] @ weight [out, in]^T + bias [out] -> [..., out] (torch.nn.functional.linear), one GEMM
// whose row blocks take the bias on the way out (no separate pass over the output).
//   backward: dx = dy W,  dW = dy^T x,  db = the column sums of dy
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {
const OpName kMatmul{"matmul"};
const OpName kLinear{"linear"};
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  check_floating("matmul", a);
  HC_CHECK(a.dim() >= 1 && b.dim() >= 1, ShapeError, "matmul: shapes ", a.shape(), " and ", b.shape(),
           " cannot be multiplied (0-d operand)");
  const int64_t k_a = a.shape().back(), k_b = b.dim() == 1 ? b.shape()[0] : b.shape()[b.dim() - 2];
  HC_CHECK(k_a == k_b, ShapeError, "matmul: shapes ", a.shape(), " and ", b.shape(), " cannot be multiplied");

  // Vectors: a 1-d left operand is a row, a 1-d right operand a column; the added dim is dropped after.
  if (a.dim() == 1 && b.dim() == 1) return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(-1)).squeeze(-1);
  // [..., n, k] @ [k, m]: fold the batch into the rows, one big GEMM (and one for dB in backward).
  if (b.dim() == 2 && a.dim() > 2) {
    Shape out_shape = a.shape();
    out_shape.back() = b.shape()[1];
    return matmul(a.reshape({-1, k_a}), b).reshape(out_shape);
  }

  const Shape batch_a(a.shape().begin(), a.shape().end() - 2), batch_b(b.shape().begin(), b.shape().end() - 2);
  Shape batch;
  try {
    batch = broadcast_shapes("matmul", batch_a, batch_b);
  } catch (const ShapeError&) {
    throw ShapeError(detail::concat("matmul: batch dims ", batch_a, " and ", batch_b, " of shapes ", a.shape(),
                                    " and ", b.shape(), " cannot be broadcast"));
  }
  const int64_t n = a.shape()[a.dim() - 2], m = b.shape().back();
  Shape a_shape = batch, b_shape = batch, out_shape = batch;
  a_shape.insert(a_shape.end(), {n, k_a});
  b_shape.insert(b_shape.end(), {k_a, m});
  out_shape.insert(out_shape.end(), {n, m});

  Tensor out = Tensor::empty(out_shape, a.options());
  HC_KERNEL(matmul, out, out, broadcast_view("matmul", a, a_shape), broadcast_view("matmul", b, b_shape), Tensor());
  return record(kMatmul, out, {a, b}, [a = save(a, kMatmul), b = save(b, kMatmul)](const Tensor& g, const Needs& need) {
    return TensorList{need[0] ? matmul(g, b.get().transpose(-1, -2)) : Tensor(),
                      need[1] ? matmul(a.get().transpose(-1, -2), g) : Tensor()};
  });
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const char* op = kLinear.c_str();
  check_floating(op, x);
  check_same_dtype(op, x, weight);
  check_same_device(op, x, weight);
  HC_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.shape().back() == weight.shape()[1], ShapeError, op, ": input ",
           x.shape(), " and weight ", weight.shape(), " do not fit (the weight is [out, in], the input [..., in])");
  if (!bias.defined()) return matmul(x, weight.t());
  check_same_dtype(op, x, bias);
  check_same_device(op, x, bias);
  const int64_t in = weight.shape()[1], out_features = weight.shape()[0];
  HC_CHECK(bias.dim() == 1 && bias.shape()[0] == out_features, ShapeError, op, ": bias ", bias.shape(),
           " does not match the weight ", weight.shape(), " (expected [", out_features, "])");
  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  const int64_t n = numel(Shape(x.shape().begin(), x.shape().end() - 1));  // rows, also when in = 0
  const Tensor rows = x.detach().reshape({n, in});                          // [N, in]; a view when contiguous
  Tensor out = Tensor::empty({n, out_features}, x.options());
  HC_KERNEL(matmul, out, out, rows, weight.detach().t(), broadcast_view(op, as_contiguous(bias.detach()), out.shape()));
  return record(kLinear, out.view(out_shape), {x, weight, bias},
                [rows = save(rows, kLinear), w = save(weight, kLinear), in, out_features](const Tensor& g,
                                                                                          const Needs& need) {
                  const int64_t n = numel(Shape(g.shape().begin(), g.shape().end() - 1));
                  const Tensor g_rows = g.reshape({n, out_features});  // [N, out]
                  Shape x_shape = g.shape();
                  x_shape.back() = in;
                  return TensorList{need[0] ? matmul(g_rows, w.get()).reshape(x_shape) : Tensor(),
                                    need[1] ? matmul(g_rows.t(), rows.get()) : Tensor(),
                                    need[2] ? sum(g_rows, {0}) : Tensor()};
                });
}

}  // namespace hcgrad
