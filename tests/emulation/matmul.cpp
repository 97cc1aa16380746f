// cuBLAS has no host emulation: under it, the GPU's matmul kernel (cuda/matmul.cpp) is the CPU's GEMM, so the
// kernels built on GEMMs (cuda/scaled_rms_norm_matmul.cu) run their own parts emulated and their products on
// the CPU. The GPU suite (tests/gpu/) checks the real cuBLAS path.
#include "hcgrad/core/kernels.h"

namespace hcgrad::emulated_cuda {

void matmul(const Tensor& out, const Tensor& a, const Tensor& b, const Tensor& bias) { cpu::matmul(out, a, b, bias); }

}  // namespace hcgrad::emulated_cuda
