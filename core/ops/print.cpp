// Printing, in PyTorch's layout:
//   tensor([[ 1.0000, -2.5000],
//           [ 3.0000,  4.0000]], shape=[2,2], dtype=float32, requires_grad=true)
// Large tensors show the first and last three entries of each dim around "...".
// In the op layer: a GPU tensor is printed from a copy (to(), an op), and grad_fn's name comes from the
// autograd graph.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "hcgrad/autograd/node.h"
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/tensor.h"

namespace hcgrad {

namespace {

constexpr int64_t kSummarizeAbove = 1000;  // elements
constexpr int64_t kEdgeItems = 3;

struct Printer {
  const Tensor& t;
  bool summarize;
  std::vector<std::string> cells;  // formatted elements in visiting order
  bool scientific = false;
  size_t width = 0;

  // Indices of dim `d` that are shown; -1 marks the "..." gap.
  std::vector<int64_t> shown(int64_t d) const {
    int64_t n = t.shape()[d];
    std::vector<int64_t> idx;
    if (summarize && n > 2 * kEdgeItems) {
      for (int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
    } else {
      for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  double value_at(int64_t offset) const {
    return dispatch_all("print", t.dtype(), [&]<class T>() {
      return static_cast<double>(static_cast<const T*>(t.raw_data())[offset]);
    });
  }

  // Visits shown elements in order, calling f(offset).
  template <class F>
  void visit(int64_t d, int64_t offset, const F& f) const {
    if (d == t.dim()) return f(offset);
    for (int64_t i : shown(d))
      if (i >= 0) visit(d + 1, offset + i * t.strides()[d], f);
  }

  // One element, read at its storage offset in its own type (an int64 through a double would lose bits).
  std::string format(int64_t offset) const {
    char buf[64];
    if (t.dtype() == DType::Int64) {
      std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(static_cast<const int64_t*>(t.raw_data())[offset]));
      return buf;
    }
    const double v = value_at(offset);
    if (t.dtype() == DType::Bool) return v != 0 ? "true" : "false";
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::snprintf(buf, sizeof buf, scientific ? "%.4e" : "%.4f", v);
    return buf;
  }

  void prepare() {
    std::vector<int64_t> offsets;
    visit(0, 0, [&](int64_t off) { offsets.push_back(off); });
    if (is_floating(t.dtype())) {
      for (int64_t off : offsets) {
        double a = std::abs(value_at(off));
        if (std::isfinite(a) && (a >= 1e8 || (a > 0 && a < 1e-4))) scientific = true;
      }
    }
    for (int64_t off : offsets) {
      cells.push_back(format(off));
      width = std::max(width, cells.back().size());
    }
  }

  void print(std::ostream& out, int64_t d, int64_t offset, size_t& cell, int indent) const {
    if (d == t.dim()) {
      const std::string& s = cells[cell++];
      out << std::string(width - s.size(), ' ') << s;
      return;
    }
    out << '[';
    bool first = true;
    for (int64_t i : shown(d)) {
      if (!first) {
        out << ',';
        if (d + 1 < t.dim()) out << std::string(t.dim() - d - 1, '\n') << std::string(indent + d + 1, ' ');
        else out << ' ';
      }
      first = false;
      if (i < 0) out << "...";
      else print(out, d + 1, offset + i * t.strides()[d], cell, indent);
    }
    out << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& t) {
  if (!t.defined()) return out << "tensor(undefined)";
  out << "tensor(";
  if (t.numel() == 0) {
    out << "[]";
  } else {
    const Tensor host = t.detach().to(Device::cpu());  // GPU values are read from a copy
    Printer p{host, t.numel() > kSummarizeAbove, {}};
    p.prepare();
    size_t cell = 0;
    p.print(out, 0, 0, cell, static_cast<int>(sizeof("tensor(") - 1));
  }
  out << ", shape=" << t.shape() << ", dtype=" << t.dtype();
  if (!t.device().is_cpu()) out << ", device=" << t.device();
  if (t.grad_fn()) out << ", grad_fn=<" << t.grad_fn()->name() << '>';
  else if (t.requires_grad()) out << ", requires_grad=true";
  return out << ')';
}

}  // namespace hcgrad
