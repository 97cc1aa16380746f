// The CUDA kernels, run on the CPU under the host emulation (cuda_emulation.h), against the CPU kernels of
// the same name on the same inputs. Built in CPU-only builds (the sanitizer build in CI), so every index a
// kernel computes is also checked by AddressSanitizer. It proves the kernels' logic, not their speed or
// their behaviour on real hardware: the GPU suite (tests/gpu/) does that on a GPU.
//
// Bar: relative error ||emulated - cpu|| / ||cpu|| below 1e-5 in float32 and 1e-12 in float64.
#include "helpers.h"

#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/common.h"  // the emulation's stand-in: index_fault()

namespace hcgrad::emulated_cuda {
#include "hcgrad/core/kernel_list.h"
}  // namespace hcgrad::emulated_cuda

namespace {

using namespace hctest;
namespace gpu = hcgrad::emulated_cuda;
using hcgrad::cuda::IndexFault;
using hcgrad::cuda::IndexFaultKernel;

double tolerance(DType dtype) { return dtype == DType::Float32 ? 1e-5 : 1e-12; }

Tensor random(const Shape& shape, DType dtype, double lo = -2, double hi = 2) {
  static Generator gen(21);
  return (rand(shape, {.dtype = DType::Float64}, gen) * (hi - lo) + lo).to(dtype);
}

Tensor empty_like_contiguous(const Tensor& t) { return Tensor::empty(t.shape(), t.options()); }

// Runs `kernel(out...)` into fresh outputs for both backends and compares each output.
template <class Cpu, class Emulated>
void compare(const std::vector<Tensor>& cpu_outputs, const std::vector<Tensor>& gpu_outputs, const Cpu& cpu_run,
             const Emulated& gpu_run, double tol) {
  cpu_run();
  gpu_run();
  for (size_t i = 0; i < cpu_outputs.size(); ++i) {
    CAPTURE(i);
    CHECK(relative_error(gpu_outputs[i], cpu_outputs[i]) <= tol);
  }
}

const DType kFloatTypes[] = {DType::Float32, DType::Float64};

TEST_CASE("emulated CUDA: unary ops and their backward, every op of the table") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    // Both signs, but positive where only those are in the domain (log, sqrt, rsqrt, log1p below -1).
    const Tensor signed_x = random({3, 70}, dtype, -2.5, 2.5), positive_x = random({3, 70}, dtype, 0.2, 2.5);
    const Tensor g = random({3, 70}, dtype);
    const auto input_for = [&](UnaryOp op) {
      const bool positive = op == UnaryOp::log || op == UnaryOp::sqrt || op == UnaryOp::rsqrt || op == UnaryOp::log1p;
      return positive ? positive_x : signed_x;
    };
#define HC_EMULATED_UNARY(name, saves, default_a, forward, vjp)                                         \
    {                                                                                                    \
      CAPTURE(#name);                                                                                    \
      const double a = default_a == 0 ? 0.0 : 0.7;  /* a parameter other than the default */          \
      const Tensor x = input_for(UnaryOp::name);                                                         \
      Tensor y_cpu = empty_like_contiguous(x), y_gpu = empty_like_contiguous(x);                        \
      cpu::unary(UnaryOp::name, y_cpu, x, a);                                                            \
      gpu::unary(UnaryOp::name, y_gpu, x, a);                                                            \
      CHECK(relative_error(y_gpu, y_cpu) <= tolerance(dtype));                                           \
      Tensor dx_cpu = empty_like_contiguous(x), dx_gpu = empty_like_contiguous(x);                      \
      cpu::unary_backward(UnaryOp::name, dx_cpu, x, y_cpu, g, a);                                        \
      gpu::unary_backward(UnaryOp::name, dx_gpu, x, y_cpu, g, a);                                        \
      CHECK(relative_error(dx_gpu, dx_cpu) <= tolerance(dtype));                                         \
    }
    HC_UNARY_OPS(HC_EMULATED_UNARY)
#undef HC_EMULATED_UNARY
  }
}

TEST_CASE("emulated CUDA: binary ops on broadcast and transposed operands, compare, where, pow, clamp") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    const Tensor a = random({40, 30}, dtype).t();                     // [30, 40], transposed memory
    const Tensor b = random({40}, dtype, 0.5, 2).expand({30, 40});   // stride 0 on dim 0
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow}) {
      const Tensor base = op == BinaryOp::Pow ? abs(a) : a;  // a negative base to a fractional power is NaN
      Tensor c = Tensor::empty({30, 40}, a.options()), e = Tensor::empty({30, 40}, a.options());
      compare({c}, {e}, [&] { cpu::binary(op, c, base, b); }, [&] { gpu::binary(op, e, base, b); }, tolerance(dtype));
    }
    Tensor c = Tensor::empty({30, 40}, a.options()), e = Tensor::empty({30, 40}, a.options());
    compare({c}, {e}, [&] { cpu::add_scaled(c, a, b, -0.7); }, [&] { gpu::add_scaled(e, a, b, -0.7); },
            tolerance(dtype));
    Tensor m_cpu = Tensor::empty({30, 40}, {.dtype = DType::Bool}), m_gpu = Tensor::empty({30, 40}, {.dtype = DType::Bool});
    cpu::compare(CompareOp::Lt, m_cpu, a, b);
    gpu::compare(CompareOp::Lt, m_gpu, a, b);
    CHECK(values(m_gpu) == values(m_cpu));
    compare({c}, {e}, [&] { cpu::where(c, m_cpu, a, b); }, [&] { gpu::where(e, m_cpu, a, b); }, 0);
    const Tensor positive = random({30, 40}, dtype, 0.3, 2), g = random({30, 40}, dtype);
    for (double p : {2.0, 0.5, -1.5, 0.0}) {
      compare({c}, {e}, [&] { cpu::pow(c, positive, p); }, [&] { gpu::pow(e, positive, p); }, tolerance(dtype));
      compare({c}, {e}, [&] { cpu::pow_backward(c, positive, g, p); }, [&] { gpu::pow_backward(e, positive, g, p); },
              tolerance(dtype));
    }
    compare({c}, {e}, [&] { cpu::clamp(c, a, -0.5, INFINITY); }, [&] { gpu::clamp(e, a, -0.5, INFINITY); }, 0);
    compare({c}, {e}, [&] { cpu::clamp_backward(c, a, g, -0.5, 1.0); },
            [&] { gpu::clamp_backward(e, a, g, -0.5, 1.0); }, 0);
  }
}

TEST_CASE("emulated CUDA: copy converts dtypes and walks strides, fill fills") {
  const Tensor x = random({5, 6, 7}, DType::Float64).permute({2, 0, 1});  // [7, 5, 6], no dim contiguous
  for (DType to : {DType::Float32, DType::Float64, DType::Int64, DType::Bool}) {
    CAPTURE(to);
    Tensor c = Tensor::empty(x.shape(), {.dtype = to}), e = Tensor::empty(x.shape(), {.dtype = to});
    cpu::copy(c, x);
    gpu::copy(e, x);
    CHECK(values(e) == values(c));
    cpu::fill(c, 3.0);
    gpu::fill(e, 3.0);
    CHECK(values(e) == values(c));
  }
}

TEST_CASE("emulated CUDA: row reductions, including NaN, ties and rows of -inf") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    for (const Shape& shape : {Shape{7, 5}, Shape{3, 3000}, Shape{1, 1}, Shape{2, 70001}}) {  // the last split in chunks
      CAPTURE(shape);
      Tensor x = random(shape, dtype).contiguous();
      Tensor c = Tensor::empty({shape[0]}, x.options()), e = Tensor::empty({shape[0]}, x.options());
      compare({c}, {e}, [&] { cpu::sum_rows(c, x); }, [&] { gpu::sum_rows(e, x); }, tolerance(dtype));
      compare({c}, {e}, [&] { cpu::logsumexp_rows(c, x); }, [&] { gpu::logsumexp_rows(e, x); }, tolerance(dtype));
      for (bool take_max : {true, false}) {
        Tensor ci = Tensor::empty({shape[0]}, {.dtype = DType::Int64}), ei = Tensor::empty({shape[0]}, {.dtype = DType::Int64});
        cpu::max_rows(c, ci, x, take_max);
        gpu::max_rows(e, ei, x, take_max);
        CHECK(values(e) == values(c));
        CHECK(values(ei) == values(ci));
      }
    }
    // Ties (first position wins), a NaN (wins, first one), a row of -inf (logsumexp -inf).
    Tensor x = tensor({1, 3, 3, 0, /**/ 2, NAN, 5, NAN, /**/ -INFINITY, -INFINITY, -INFINITY, -INFINITY}, {3, 4},
                      {.dtype = dtype});
    Tensor c = Tensor::empty({3}, x.options()), e = Tensor::empty({3}, x.options());
    Tensor ci = Tensor::empty({3}, {.dtype = DType::Int64}), ei = Tensor::empty({3}, {.dtype = DType::Int64});
    cpu::max_rows(c, ci, x, true);
    gpu::max_rows(e, ei, x, true);
    CHECK(values(ei) == values(ci));
    CHECK(values(ei) == std::vector<double>{1, 1, 0});
    cpu::logsumexp_rows(c, x);
    gpu::logsumexp_rows(e, x);
    CHECK(std::isnan(values(e)[1]));
    CHECK(values(e)[2] == -INFINITY);
    // The same in rows long enough to be split into chunks: a tie across chunks, a NaN in a later chunk than
    // the maximum, a row of -inf.
    Tensor long_x = zeros({3, 70001}, {.dtype = dtype});
    long_x.narrow(0, 0, 1).narrow(1, 20000, 1).fill_(5.0);
    long_x.narrow(0, 0, 1).narrow(1, 50000, 1).fill_(5.0);
    long_x.narrow(0, 1, 1).narrow(1, 100, 1).fill_(5.0);
    long_x.narrow(0, 1, 1).narrow(1, 60000, 1).fill_(NAN);
    long_x.narrow(0, 2, 1).fill_(-INFINITY);
    Tensor lv = Tensor::empty({3}, long_x.options()), li = Tensor::empty({3}, {.dtype = DType::Int64});
    gpu::max_rows(lv, li, long_x, true);
    CHECK(values(li) == std::vector<double>{20000, 60000, 0});
    gpu::logsumexp_rows(lv, long_x);
    CHECK(values(lv)[0] == doctest::Approx(std::log(69999.0 + 2 * std::exp(5.0))).epsilon(1e-6));
    CHECK(std::isnan(values(lv)[1]));
    CHECK(values(lv)[2] == -INFINITY);
  }
}

TEST_CASE("emulated CUDA: prod_rows and its backward, with zeros in the rows") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    Tensor x = random({9, 13}, dtype, 0.5, 1.5).contiguous();
    x.narrow(0, 1, 1).narrow(1, 4, 1).fill_(0.0);  // one zero in row 1
    x.narrow(0, 2, 1).narrow(1, 0, 2).fill_(0.0);  // two in row 2
    Tensor c = Tensor::empty({9}, x.options()), e = Tensor::empty({9}, x.options());
    compare({c}, {e}, [&] { cpu::prod_rows(c, x); }, [&] { gpu::prod_rows(e, x); }, 0);  // the same order
    const Tensor g = random({9}, dtype);
    Tensor dc = Tensor::empty(x.shape(), x.options()), de = Tensor::empty(x.shape(), x.options());
    compare({dc}, {de}, [&] { cpu::prod_rows_backward(dc, x, g); }, [&] { gpu::prod_rows_backward(de, x, g); }, 0);
    CHECK(values(dc.narrow(0, 1, 1).narrow(1, 0, 1)) == std::vector<double>{0});  // beside the zero
    CHECK(values(dc.narrow(0, 1, 1).narrow(1, 4, 1))[0] != 0);                    // at the zero
  }
}

TEST_CASE("emulated CUDA: cumsum_rows both ways, sort_rows with ties and NaN") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    const Tensor x = random({6, 37}, dtype).contiguous();
    Tensor c = Tensor::empty(x.shape(), x.options()), e = Tensor::empty(x.shape(), x.options());
    for (bool reverse : {false, true})
      compare({c}, {e}, [&] { cpu::cumsum_rows(c, x, reverse); }, [&] { gpu::cumsum_rows(e, x, reverse); }, 0);
    // Rounded to a few values, so rows have many ties; NaN in one row.
    Tensor r = (random({5, 40}, DType::Float64, 0, 4).to(DType::Int64).to(dtype)).contiguous();
    r.narrow(0, 3, 1).narrow(1, 5, 3).fill_(NAN);
    for (bool descending : {false, true}) {
      CAPTURE(descending);
      Tensor ci = Tensor::empty(r.shape(), {.dtype = DType::Int64}), ei = Tensor::empty(r.shape(), {.dtype = DType::Int64});
      cpu::sort_rows(ci, r, descending);
      gpu::sort_rows(ei, r, descending);
      CHECK(values(ei) == values(ci));
    }
  }
}

TEST_CASE("emulated CUDA: softmax and log_softmax, forward and backward") {
  for (DType dtype : kFloatTypes) {
    for (bool log : {false, true}) {
      CAPTURE(dtype);
      CAPTURE(log);
      for (const Shape& shape : {Shape{9, 13}, Shape{2, 1500}}) {
        const Tensor x = random(shape, dtype, -4, 4), g = random(shape, dtype);
        Tensor c = Tensor::empty(shape, x.options()), e = Tensor::empty(shape, x.options());
        compare({c}, {e}, [&] { cpu::softmax(c, x, log); }, [&] { gpu::softmax(e, x, log); }, tolerance(dtype));
        Tensor dc = Tensor::empty(shape, x.options()), de = Tensor::empty(shape, x.options());
        compare({dc}, {de}, [&] { cpu::softmax_backward(dc, c, g, log); }, [&] { gpu::softmax_backward(de, c, g, log); },
                tolerance(dtype));
      }
    }
  }
}

TEST_CASE("emulated CUDA: index_select and index_add along a middle dim, repeated indices") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    const Tensor x = random({3, 6, 5}, dtype);
    const Tensor index = from_vector<int64_t>({5, 0, 2, 2, 5, 1, 0});
    Tensor c = Tensor::empty({3, 7, 5}, x.options()), e = Tensor::empty({3, 7, 5}, x.options());
    compare({c}, {e}, [&] { cpu::index_select(c, x, 1, index); }, [&] { gpu::index_select(e, x, 1, index); }, 0);
    Tensor ac = zeros({3, 6, 5}, {.dtype = dtype}), ae = zeros({3, 6, 5}, {.dtype = dtype});
    compare({ac}, {ae}, [&] { cpu::index_add(ac, 1, index, c); }, [&] { gpu::index_add(ae, 1, index, c); },
            tolerance(dtype));
  }
}

TEST_CASE("emulated CUDA: gather_places along every dim of a 3-d index smaller than x") {
  const Shape x_shape{4, 5, 3};
  Generator gen(8);
  for (int64_t dim = 0; dim < 3; ++dim) {
    CAPTURE(dim);
    const Shape index_shape{3, 2, 3};
    const Tensor index = randint(0, x_shape[dim], index_shape, {.dtype = DType::Int64}, gen);
    Tensor c = Tensor::empty({index.numel()}, index.options()), e = Tensor::empty({index.numel()}, index.options());
    cpu::gather_places("gather", c, index, index_shape, x_shape, dim);
    gpu::gather_places("gather", e, index, index_shape, x_shape, dim);
    CHECK(values(e) == values(c));
  }
}

// GPU indices are checked by the kernels (cuda/index_fault.h): a bad one is recorded, its access skipped.
TEST_CASE("emulated CUDA: an index or a target out of range is recorded, not followed") {
  IndexFault& fault = *gpu::index_fault();
  fault = IndexFault();
  const Tensor x = random({5, 3}, DType::Float32);
  Tensor out = Tensor::empty({2, 3}, x.options());
  gpu::index_select(out, x, 0, from_vector<int64_t>({1, 7}));
  CHECK(fault.recorded == 1);
  CHECK(fault.kernel == IndexFaultKernel::IndexSelect);
  CHECK(fault.index == 7);
  CHECK(fault.limit == 5);
  CHECK(values(out.narrow(0, 1, 1)) == std::vector<double>{0, 0, 0});
  CHECK(values(out.narrow(0, 0, 1)) == values(x.narrow(0, 1, 1)));
  fault = IndexFault();
  Tensor sums = zeros({5, 3}, x.options());
  gpu::index_add(sums, 0, from_vector<int64_t>({-1, 2}), out);
  CHECK(fault.kernel == IndexFaultKernel::IndexAdd);
  CHECK(fault.index == -1);
  fault = IndexFault();
  const Tensor logits = random({3, 4}, DType::Float64);
  Tensor losses = Tensor::empty({3}, logits.options()), lse = Tensor::empty({3}, logits.options());
  gpu::cross_entropy_forward(losses, lse, logits, from_vector<int64_t>({0, 4, -100}), -100);
  CHECK(fault.kernel == IndexFaultKernel::CrossEntropy);
  CHECK(fault.index == 4);
  CHECK(std::isnan(values(losses)[1]));
  CHECK(values(losses)[2] == 0);
  fault = IndexFault();
  Tensor places = Tensor::empty({3}, {.dtype = DType::Int64});
  gpu::gather_places("gather", places, from_vector<int64_t>({1, 3, 2}, {1, 3}), {1, 3}, {2, 3}, 1);
  CHECK(fault.kernel == IndexFaultKernel::GatherPlaces);
  CHECK(fault.index == 3);
  CHECK(fault.limit == 3);
  CHECK(values(places) == std::vector<double>{1, 0, 2});  // the bad one sent to place 0
  fault = IndexFault();
}

TEST_CASE("emulated CUDA: cross_entropy forward and backward with an ignored target") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    const Tensor logits = random({6, 300}, dtype, -5, 5);
    const Tensor targets = from_vector<int64_t>({3, 299, -100, 0, 150, 7});
    Tensor lc = Tensor::empty({6}, logits.options()), le = Tensor::empty({6}, logits.options());
    Tensor sc = Tensor::empty({6}, logits.options()), se = Tensor::empty({6}, logits.options());
    compare({lc, sc}, {le, se}, [&] { cpu::cross_entropy_forward(lc, sc, logits, targets, -100); },
            [&] { gpu::cross_entropy_forward(le, se, logits, targets, -100); }, tolerance(dtype));
    const Tensor g = random({6}, dtype);
    Tensor dc = Tensor::empty({6, 300}, logits.options()), de = Tensor::empty({6, 300}, logits.options());
    compare({dc}, {de}, [&] { cpu::cross_entropy_backward(dc, logits, targets, sc, g, -100); },
            [&] { gpu::cross_entropy_backward(de, logits, targets, sc, g, -100); }, tolerance(dtype));
  }
}

// The weight and bias gradients alone (grad_x not wanted), over more rows than one chunk of 256 and more
// columns than one tile of 32: the two-pass column sums of cuda/launch.cuh.
TEST_CASE("emulated CUDA: layer_norm's and rms_norm's parameter gradients over several chunks of rows") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    const int64_t N = 531, D = 40;
    const Tensor x = random({N, D}, dtype, -3, 3), g = random({N, D}, dtype), w = random({D}, dtype);
    Tensor y = Tensor::empty({N, D}, x.options()), mean = Tensor::empty({N}, x.options());
    Tensor rstd = Tensor::empty({N}, x.options());
    cpu::layer_norm_forward(y, mean, rstd, x, w, Tensor(), 1e-5);
    Tensor dwc = zeros({D}, x.options()), dwe = zeros({D}, x.options());
    Tensor dbc = zeros({D}, x.options()), dbe = zeros({D}, x.options());
    compare({dwc, dbc}, {dwe, dbe}, [&] { cpu::layer_norm_backward(Tensor(), dwc, dbc, g, x, w, mean, rstd); },
            [&] { gpu::layer_norm_backward(Tensor(), dwe, dbe, g, x, w, mean, rstd); }, tolerance(dtype));
    cpu::rms_norm_forward(y, rstd, x, w, 1e-6);
    Tensor rc = zeros({D}, x.options()), re = zeros({D}, x.options());
    compare({rc}, {re}, [&] { cpu::rms_norm_backward(Tensor(), rc, g, x, w, rstd); },
            [&] { gpu::rms_norm_backward(Tensor(), re, g, x, w, rstd); }, tolerance(dtype));
  }
}

TEST_CASE("emulated CUDA: layer_norm and rms_norm, forward and backward, with and without parameters") {
  for (DType dtype : kFloatTypes) {
    for (bool affine : {true, false}) {
      CAPTURE(dtype);
      CAPTURE(affine);
      const int64_t N = 19, D = 70;
      const Tensor x = random({N, D}, dtype, -3, 3), g = random({N, D}, dtype);
      const Tensor w = affine ? random({D}, dtype) : Tensor(), b = affine ? random({D}, dtype) : Tensor();
      Tensor yc = Tensor::empty({N, D}, x.options()), ye = Tensor::empty({N, D}, x.options());
      Tensor mc = Tensor::empty({N}, x.options()), me = Tensor::empty({N}, x.options());
      Tensor rc = Tensor::empty({N}, x.options()), re = Tensor::empty({N}, x.options());
      compare({yc, mc, rc}, {ye, me, re}, [&] { cpu::layer_norm_forward(yc, mc, rc, x, w, b, 1e-5); },
              [&] { gpu::layer_norm_forward(ye, me, re, x, w, b, 1e-5); }, tolerance(dtype));
      Tensor dxc = Tensor::empty({N, D}, x.options()), dxe = Tensor::empty({N, D}, x.options());
      Tensor dwc = zeros({D}, x.options()), dwe = zeros({D}, x.options());
      Tensor dbc = zeros({D}, x.options()), dbe = zeros({D}, x.options());
      compare({dxc, dwc, dbc}, {dxe, dwe, dbe},
              [&] { cpu::layer_norm_backward(dxc, dwc, dbc, g, x, w, mc, rc); },
              [&] { gpu::layer_norm_backward(dxe, dwe, dbe, g, x, w, mc, rc); }, tolerance(dtype));
      compare({yc, rc}, {ye, re}, [&] { cpu::rms_norm_forward(yc, rc, x, w, 1e-6); },
              [&] { gpu::rms_norm_forward(ye, re, x, w, 1e-6); }, tolerance(dtype));
      Tensor dw2c = zeros({D}, x.options()), dw2e = zeros({D}, x.options());
      compare({dxc, dw2c}, {dxe, dw2e}, [&] { cpu::rms_norm_backward(dxc, dw2c, g, x, w, rc); },
              [&] { gpu::rms_norm_backward(dxe, dw2e, g, x, w, rc); }, tolerance(dtype));
    }
  }
}

TEST_CASE("emulated CUDA: sinkhorn forward and recomputing backward, both domains, square and not") {
  for (DType dtype : kFloatTypes) {
    for (bool log_domain : {false, true}) {
      for (const Shape& shape : {Shape{150, 4, 4}, Shape{3, 3, 5}}) {
        CAPTURE(dtype);
        CAPTURE(log_domain);
        CAPTURE(shape);
        const Tensor logits = random(shape, dtype), g = random(shape, dtype);
        Tensor c = Tensor::empty(shape, logits.options()), e = Tensor::empty(shape, logits.options());
        compare({c}, {e}, [&] { cpu::sinkhorn_forward(c, logits, 7, log_domain); },
                [&] { gpu::sinkhorn_forward(e, logits, 7, log_domain); }, tolerance(dtype));
        compare({c}, {e}, [&] { cpu::sinkhorn_backward(c, logits, g, 7, log_domain); },
                [&] { gpu::sinkhorn_backward(e, logits, g, 7, log_domain); }, tolerance(dtype));
      }
    }
  }
}

TEST_CASE("emulated CUDA: adam_update, Adam and AdamW") {
  for (DType dtype : kFloatTypes) {
    for (bool decoupled : {true, false}) {
      CAPTURE(dtype);
      CAPTURE(decoupled);
      const AdamUpdateOptions step{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8,
                                   .decoupled_decay = decoupled ? 0.1 : 0.0, .l2_decay = decoupled ? 0.0 : 0.1,
                          .step_size = 1e-2 / (1 - 0.9 * 0.9), .bias_correction2_sqrt = std::sqrt(1 - 0.95 * 0.95)};
      const Tensor grad = random({1000}, dtype);
      Tensor pc = random({1000}, dtype), mc = random({1000}, dtype) * 0.1, vc = random({1000}, dtype, 0, 1);
      Tensor pe = pc.clone(), me = mc.clone(), ve = vc.clone();
      compare({pc, mc, vc}, {pe, me, ve}, [&] { cpu::adam_update(pc, grad, mc, vc, step); },
              [&] { gpu::adam_update(pe, grad, me, ve, step); }, tolerance(dtype));
    }
  }
}

TEST_CASE("emulated CUDA: scaled_dot_product_attention forward and backward, causal and not, odd sizes") {
  for (DType dtype : kFloatTypes) {
    for (bool causal : {true, false}) {
      for (const Shape& shape : {Shape{1, 2, 37, 24}, Shape{2, 1, 5, 65}}) {
        CAPTURE(dtype);
        CAPTURE(causal);
        CAPTURE(shape);
        const Tensor q = random(shape, dtype), k = random(shape, dtype), v = random(shape, dtype);
        const Tensor go = random(shape, dtype);
        const double scale = 1 / std::sqrt(static_cast<double>(shape[3]));
        const Shape rows{shape[0], shape[1], shape[2]};
        Tensor oc = Tensor::empty(shape, q.options()), oe = Tensor::empty(shape, q.options());
        Tensor lc = Tensor::empty(rows, q.options()), le = Tensor::empty(rows, q.options());
        compare({oc, lc}, {oe, le}, [&] { cpu::scaled_dot_product_attention_forward(oc, lc, q, k, v, causal, scale); },
                [&] { gpu::scaled_dot_product_attention_forward(oe, le, q, k, v, causal, scale); }, tolerance(dtype) * 10);
        Tensor dqc = Tensor::empty(shape, q.options()), dkc = Tensor::empty(shape, q.options()),
               dvc = Tensor::empty(shape, q.options());
        Tensor dqe = Tensor::empty(shape, q.options()), dke = Tensor::empty(shape, q.options()),
               dve = Tensor::empty(shape, q.options());
        compare({dqc, dkc, dvc}, {dqe, dke, dve},
                [&] { cpu::scaled_dot_product_attention_backward(dqc, dkc, dvc, go, q, k, v, oc, lc, causal, scale); },
                [&] { gpu::scaled_dot_product_attention_backward(dqe, dke, dve, go, q, k, v, oc, lc, causal, scale); },
                tolerance(dtype) * 10);
      }
    }
  }
}

TEST_CASE("emulated CUDA: scaled_dot_product_attention on strided heads: a packed qkv, [B, T, H, hd] outputs") {
  // q, k, v, their gradients: heads of packed [B, T, 3·H·hd] tensors (rows 3·H·hd apart); out and grad_out:
  // heads of [B, T, H·hd] rows, as the packed op hands them to the kernels.
  const int64_t B = 1, H = 2, T = 37, hd = 24;  // T spans two tiles of keys and of rows; small: emulation is slow
  auto heads = [&](const Tensor& rows, int64_t part) {
    return rows.narrow(2, part * H * hd, H * hd).view({B, T, H, hd}).permute({0, 2, 1, 3});
  };
  for (DType dtype : kFloatTypes) {
    for (bool causal : {true, false}) {
      CAPTURE(dtype);
      CAPTURE(causal);
      const Tensor packed = random({B, T, 3 * H * hd}, dtype), go_rows = random({B, T, H * hd}, dtype);
      const Tensor q = heads(packed, 0), k = heads(packed, 1), v = heads(packed, 2), go = heads(go_rows, 0);
      const double scale = 0.3;
      Tensor oc_rows = Tensor::empty({B, T, H * hd}, q.options()), oe_rows = Tensor::empty({B, T, H * hd}, q.options());
      Tensor oc = heads(oc_rows, 0), oe = heads(oe_rows, 0);
      Tensor lc = Tensor::empty({B, H, T}, q.options()), le = Tensor::empty({B, H, T}, q.options());
      compare({oc_rows, lc}, {oe_rows, le},
              [&] { cpu::scaled_dot_product_attention_forward(oc, lc, q, k, v, causal, scale); },
              [&] { gpu::scaled_dot_product_attention_forward(oe, le, q, k, v, causal, scale); }, tolerance(dtype) * 10);
      Tensor gc = Tensor::empty(packed.shape(), q.options()), ge = Tensor::empty(packed.shape(), q.options());
      compare({gc}, {ge},
              [&] {
                cpu::scaled_dot_product_attention_backward(heads(gc, 0), heads(gc, 1), heads(gc, 2), go, q, k,
                                                           v, oc, lc, causal, scale);
              },
              [&] {
                gpu::scaled_dot_product_attention_backward(heads(ge, 0), heads(ge, 1), heads(ge, 2), go, q, k,
                                                           v, oc, lc, causal, scale);
              },
              tolerance(dtype) * 10);
    }
  }
}

TEST_CASE("emulated CUDA: stream_mix, stream_mix_add and stream_mix_backward") {
  for (DType dtype : kFloatTypes) {
    for (const Shape& sizes : {Shape{33, 4, 4, 40}, Shape{5, 3, 1, 300}, Shape{4, 20, 2, 7}}) {  // M, S, K, D
      CAPTURE(dtype);
      CAPTURE(sizes);
      const int64_t M = sizes[0], S = sizes[1], K = sizes[2], D = sizes[3];
      const Tensor w = random({M, S, K}, dtype), x = random({M, S, D}, dtype), g = random({M, K, D}, dtype);
      Tensor c = Tensor::empty({M, K, D}, x.options()), e = Tensor::empty({M, K, D}, x.options());
      compare({c}, {e}, [&] { cpu::stream_mix(c, w, x); }, [&] { gpu::stream_mix(e, w, x); },
              tolerance(dtype));
      // With the merge's extra rows (E = 1 and E = 3).
      for (int64_t E : {1, 3}) {
        const Tensor ew = random({M, E, K}, dtype), ex = random({M, E, D}, dtype);
        compare({c}, {e}, [&] { cpu::stream_mix_add(c, w, x, ew, ex); }, [&] { gpu::stream_mix_add(e, w, x, ew, ex); },
                tolerance(dtype));
      }
      // Backward: both gradients, then each alone (the other undefined).
      Tensor dc = Tensor::empty({M, S, K}, x.options()), de = Tensor::empty({M, S, K}, x.options());
      Tensor xc = Tensor::empty({M, S, D}, x.options()), xe = Tensor::empty({M, S, D}, x.options());
      compare({dc, xc}, {de, xe}, [&] { cpu::stream_mix_backward(dc, xc, w, x, g); },
              [&] { gpu::stream_mix_backward(de, xe, w, x, g); }, tolerance(dtype));
      compare({dc}, {de}, [&] { cpu::stream_mix_backward(dc, Tensor(), w, x, g); },
              [&] { gpu::stream_mix_backward(de, Tensor(), Tensor(), x, g); }, tolerance(dtype));
      compare({xc}, {xe}, [&] { cpu::stream_mix_backward(Tensor(), xc, w, x, g); },
              [&] { gpu::stream_mix_backward(Tensor(), xe, w, x, g); }, tolerance(dtype));
    }
  }
}

TEST_CASE("emulated CUDA: hc_width_forward, hc_depth_forward and hc_step_backward, HC, mHC and mHC paper") {
  for (DType dtype : kFloatTypes) {
    // HC with tanh, HC without, mHC (linear Sinkhorn), mHC (log), the mHC paper's form (linear, log), the Frac
    // paper's (one β column)
    for (const int kind : {0, 1, 2, 3, 4, 5, 6}) {
      CAPTURE(dtype);
      CAPTURE(kind);
      const bool paper = kind >= 4;
      const int64_t B = 2, N = 3, S = 3, F = paper ? 1 : 2, d = 5, D = F * d, R = S * F;
      const bool frac_paper = kind == 6;
      const HcStep step{.streams = S, .fracs = F, .tanh = kind == 0 || frac_paper, .manifold = kind >= 2 && !frac_paper,
                        .sinkhorn_iters = 3, .sinkhorn_log_domain = kind == 3 || kind == 5,
                        .token_projection = paper, .diagonal_beta = frac_paper};
      // The streams as the library's layout gives them: [B, S, N, D] memory read as [B, N, S, D].
      const Tensor x = random({B, S, N, D}, dtype).permute({0, 2, 1, 3}), y = random({B, N, D}, dtype);
      x.narrow(1, 1, 1).narrow(2, 0, 1).narrow(3, 0, d).mul_(0.0);  // one zero row: the clamped norm
      for (const int64_t M : {F, S * F + (frac_paper ? 1 : F)}) {  // the width step's columns, then the depth step's
        CAPTURE(M);
        const bool depth = M > F;
        // weight_t [M, d], or the paper's [R·M, S·D]: one projection of the whole token per coefficient
        const Shape weight_shape = paper ? Shape{R * M, S * D} : Shape{M, d};
        const Tensor statics = random({R, M}, dtype), weight_t = random(weight_shape, dtype), scales = random({M}, dtype);
        const Shape out_shape = depth ? Shape{B, N, S, D} : Shape{B, N, D};
        // Forward, also keeping the coefficients (recompute = false): both devices write the same `saved`.
        Tensor oc = Tensor::empty(out_shape, x.options()), oe = Tensor::empty(out_shape, x.options());
        Tensor sc = Tensor::empty({B * N, R, 1 + 3 * M}, x.options()), se = Tensor::empty(sc.shape(), x.options());
        if (depth)
          compare({oc, sc}, {oe, se}, [&] { cpu::hc_depth_forward(oc, sc, x, y, statics, weight_t, scales, step); },
                  [&] { gpu::hc_depth_forward(oe, se, x, y, statics, weight_t, scales, step); }, tolerance(dtype));
        else
          compare({oc, sc}, {oe, se}, [&] { cpu::hc_width_forward(oc, sc, x, statics, weight_t, scales, step); },
                  [&] { gpu::hc_width_forward(oe, se, x, statics, weight_t, scales, step); }, tolerance(dtype));
        const Tensor g = random(out_shape, dtype), y_in = depth ? y : Tensor();
        auto grads = [&] {
          std::vector<Tensor> out{Tensor::empty({B, N, S, D}, x.options()), Tensor::empty({B, N, D}, x.options()),
                                  Tensor::empty({R, M}, x.options()), Tensor::empty({M}, x.options()),
                                  Tensor::empty(weight_shape, x.options())};
          if (!depth) out.erase(out.begin() + 1);  // grad_y is not written by the width step
          return out;
        };
        auto run = [&](auto backward, const std::vector<Tensor>& o, const Tensor& saved) {
          const Tensor grad_y = depth ? o[1] : Tensor();
          const size_t p = depth ? 2 : 1;
          backward(o[0], grad_y, o[p], o[p + 1], o[p + 2], g, x, y_in, saved, statics, weight_t, scales, step);
        };
        // Backward recomputing the coefficients, then reading them from `saved`: the same gradients.
        std::vector<Tensor> c = grads(), e = grads(), e_saved = grads();
        compare(c, e, [&] { run(cpu::hc_step_backward, c, Tensor()); },
                [&] { run(gpu::hc_step_backward, e, Tensor()); }, tolerance(dtype) * 10);
        compare(c, e_saved, [&] { run(cpu::hc_step_backward, c, sc); },
                [&] { run(gpu::hc_step_backward, e_saved, se); }, tolerance(dtype) * 10);
      }
    }
  }
}

}  // namespace

TEST_CASE("emulated CUDA: sum_columns, sum_rows of long rows, and scaled_rms_norm_matmul on GEMMs") {
  for (DType dtype : kFloatTypes) {
    CAPTURE(dtype);
    // Tall and skinny (a bias or scale gradient: many chunks of 256 rows, a few columns), chunks not filled,
    // more than one tile of 32 columns, one row.
    for (const Shape& shape : {Shape{3000, 5}, Shape{300, 7}, Shape{257, 70}, Shape{1, 3}}) {
      CAPTURE(shape);
      const Tensor cols = random(shape, dtype);
      Tensor sc = Tensor::empty({shape[1]}, cols.options()), se = Tensor::empty({shape[1]}, cols.options());
      compare({sc}, {se}, [&] { cpu::sum_columns(sc, cols); }, [&] { gpu::sum_columns(se, cols); }, tolerance(dtype));
      Tensor again = Tensor::empty({shape[1]}, cols.options());  // deterministic: the same bits twice
      gpu::sum_columns(again, cols);
      CHECK(values(again) == values(se));
    }
    // Few long rows: each row split into chunks of 16384, the pieces added by row.
    const Tensor long_rows = random({2, 70001}, dtype);
    Tensor lc = Tensor::empty({2}, long_rows.options()), le = Tensor::empty({2}, long_rows.options());
    compare({lc}, {le}, [&] { cpu::sum_rows(lc, long_rows); }, [&] { gpu::sum_rows(le, long_rows); }, tolerance(dtype));

    const int64_t R = 301, K = 37, M = 6;
    Tensor x = random({R, K}, dtype);
    x.narrow(0, 5, 1).mul_(0.0);  // one zero row: the clamped norm, no gradient through it
    const Tensor w = random({K, M}, dtype), g = random({R, M}, dtype);
    Tensor oc = Tensor::empty({R, M}, x.options()), oe = Tensor::empty({R, M}, x.options());
    Tensor nc = Tensor::empty({R}, x.options()), ne = Tensor::empty({R}, x.options());
    compare({oc, nc}, {oe, ne}, [&] { cpu::scaled_rms_norm_matmul_forward(oc, nc, x, w); },
            [&] { gpu::scaled_rms_norm_matmul_forward(oe, ne, x, w); }, tolerance(dtype));
    Tensor gxc = Tensor::empty({R, K}, x.options()), gxe = Tensor::empty({R, K}, x.options());
    Tensor gwc = Tensor::empty({K, M}, x.options()), gwe = Tensor::empty({K, M}, x.options());
    compare({gxc, gwc}, {gxe, gwe}, [&] { cpu::scaled_rms_norm_matmul_backward(gxc, gwc, g, x, w, oc, nc); },
            [&] { gpu::scaled_rms_norm_matmul_backward(gxe, gwe, g, x, w, oc, nc); }, tolerance(dtype));
  }
}
