// Convolution and pooling over images, written with other ops: every window of the input is gathered into
// a row (im2col, one index_select over the padded input's positions), then
//   conv2d:  the rows times the flattened kernels, one GEMM per group (matmul);
//   pooling: a max or a mean over each row.
// Their gradients are those ops': index_select scatter-adds back into the windows' places.
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops/op.h"

namespace hcgrad {

namespace {

struct Windows {
  Tensor rows;              // [N, C, out_h * out_w, kh * kw]: the input under every window, window by window
  int64_t out_h, out_w;
};

// The windows of x [N, C, H, W] with kernel (kh, kw), after padding every side with `pad_value`.
Windows windows(const char* op, const Tensor& x, int64_t kh, int64_t kw, Conv2dOptions o, double pad_value) {
  HC_CHECK(x.dim() == 4, ShapeError, op, ": expected input [N, C, H, W], got ", x.shape());
  HC_CHECK(o.stride[0] > 0 && o.stride[1] > 0 && o.dilation[0] > 0 && o.dilation[1] > 0 && o.padding[0] >= 0 &&
               o.padding[1] >= 0, Error, op, ": stride and dilation must be positive and padding >= 0");
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int64_t H = x.shape()[2] + 2 * o.padding[0], W = x.shape()[3] + 2 * o.padding[1];
  const int64_t span_h = o.dilation[0] * (kh - 1) + 1, span_w = o.dilation[1] * (kw - 1) + 1;
  HC_CHECK(span_h <= H && span_w <= W, ShapeError, op, ": a ", kh, "x", kw, " window (dilation ", o.dilation[0],
           ", ", o.dilation[1], ") does not fit the padded input ", H, "x", W, " of ", x.shape());
  const int64_t out_h = (H - span_h) / o.stride[0] + 1, out_w = (W - span_w) / o.stride[1] + 1;
  const Tensor padded = pad(x, {o.padding[1], o.padding[1], o.padding[0], o.padding[0]}, pad_value);
  std::vector<int64_t> places;  // for every window (row-major) and every place in it: a position of H x W
  places.reserve(static_cast<size_t>(out_h * out_w * kh * kw));
  for (int64_t i = 0; i < out_h; ++i)
    for (int64_t j = 0; j < out_w; ++j)
      for (int64_t a = 0; a < kh; ++a)
        for (int64_t b = 0; b < kw; ++b)
          places.push_back((i * o.stride[0] + a * o.dilation[0]) * W + j * o.stride[1] + b * o.dilation[1]);
  const Tensor index = from_vector(places, {static_cast<int64_t>(places.size())}).to(x.device());
  const Tensor rows = index_select(padded.reshape({N, C, H * W}), 2, index).reshape({N, C, out_h * out_w, kh * kw});
  return {rows, out_h, out_w};
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv2dOptions o) {
  check_floating("conv2d", x);
  HC_CHECK(weight.dim() == 4, ShapeError, "conv2d: expected weight [out, in / groups, kh, kw], got ", weight.shape());
  const int64_t O = weight.shape()[0], kh = weight.shape()[2], kw = weight.shape()[3], g = o.groups;
  HC_CHECK(x.dim() == 4 && g > 0 && x.shape()[1] % g == 0 && O % g == 0 && weight.shape()[1] == x.shape()[1] / g,
           ShapeError, "conv2d: input ", x.shape(), ", weight ", weight.shape(), " and ", g,
           " groups do not fit (weight [out, in / groups, kh, kw], in and out divisible by groups)");
  HC_CHECK(!bias.defined() || bias.shape() == Shape{O}, ShapeError, "conv2d: bias must be [", O, "], got ",
           bias.shape());
  const Windows w = windows("conv2d", x, kh, kw, o, 0.0);
  const int64_t N = x.shape()[0], C = x.shape()[1], L = w.out_h * w.out_w, per_group = C / g;
  // [N, C, L, kh·kw] -> per group [N, L, (C/g)·kh·kw] @ [(C/g)·kh·kw, O/g] -> [N, L, O/g]
  std::vector<Tensor> outputs;
  for (int64_t group = 0; group < g; ++group) {
    const Tensor rows = w.rows.narrow(1, group * per_group, per_group).permute({0, 2, 1, 3}).reshape({N, L, -1});
    const Tensor kernels = weight.narrow(0, group * (O / g), O / g).reshape({O / g, -1});
    outputs.push_back(matmul(rows, kernels.t()));
  }
  Tensor y = g == 1 ? outputs[0] : cat(outputs, 2);
  if (bias.defined()) y = y + bias;
  return y.permute({0, 2, 1}).reshape({N, O, w.out_h, w.out_w});
}

Tensor conv1d(const Tensor& x, const Tensor& weight, const Tensor& bias, Conv1dOptions o) {
  HC_CHECK(x.dim() == 3 && weight.dim() == 3, ShapeError, "conv1d: expected input [N, C, L] and weight [out, in / "
           "groups, k], got ", x.shape(), " and ", weight.shape());
  const Tensor y = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias,
                          {.stride = {1, o.stride}, .padding = {0, o.padding}, .dilation = {1, o.dilation},
                           .groups = o.groups});
  return y.squeeze(2);
}

namespace {
// A pooling op's windows: square, the stride defaulting to the kernel, padding at most half of it (as torch).
Windows pool_windows(const char* op, const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride,
                     int64_t padding, double pad_value) {
  check_floating(op, x);
  HC_CHECK(padding * 2 <= kernel_size, Error, op, ": padding ", padding, " must be at most half the kernel ",
           kernel_size, " (as torch)");
  const int64_t s = stride.value_or(kernel_size);
  return windows(op, x, kernel_size, kernel_size, {.stride = {s, s}, .padding = {padding, padding}}, pad_value);
}
}  // namespace

Tensor max_pool2d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding) {
  const Windows w = pool_windows("max_pool2d", x, kernel_size, stride, padding, -INFINITY);
  return max(w.rows, {3}).reshape({x.shape()[0], x.shape()[1], w.out_h, w.out_w});
}

Tensor avg_pool2d(const Tensor& x, int64_t kernel_size, std::optional<int64_t> stride, int64_t padding) {
  // count_include_pad, torch's default: the zeros of the padding count in the mean
  const Windows w = pool_windows("avg_pool2d", x, kernel_size, stride, padding, 0.0);
  return mean(w.rows, {3}).reshape({x.shape()[0], x.shape()[1], w.out_h, w.out_w});
}

}  // namespace hcgrad
