// The tiny LM's GEMM shapes on every GEMM library this machine has: hcgrad's matmul (Eigen), and OpenBLAS,
// BLIS and oneDNN loaded at run time with dlopen (each library stays in its own namespace, so their
// `cblas_sgemm`s do not clash and a missing one is only a missing column). Prints a Markdown table of GFLOP/s.
//
//   build/bench/bench_gemm_libraries [threads] [rounds]     (default 2 threads, 5 rounds)
//
// Two ways to spend the threads are measured for each library:
//   own    one call per matrix, the library's own threading (OpenBLAS: pthreads, BLIS and oneDNN: OpenMP);
//   blocks hcgrad's way: oneTBB over (batch entry, block of rows), each block a single-threaded call.
// The shapes (N = B·T = 2048 tokens, d = 128, MLP 4d, vocab 256, 64 = B·heads attention matrices of T = 128,
// head dim 32): every Linear's forward y = x Wᵀ, input gradient dx = dy W and weight gradient dW = dyᵀ x,
// and attention's six products (scores, values, and their four gradient products).
#include <dlfcn.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "hcgrad/core/cpu/parallel.h"
#include "hcgrad/hcgrad.h"

using namespace hcgrad;

namespace {

// C[M, N] = op(A)[M, K] op(B)[K, N], all row-major; batch independent products of this shape.
struct GemmShape {
  const char* name;
  int batch, m, n, k;
  bool trans_a, trans_b;
};

const std::vector<GemmShape> kShapes = {
    {"qkv forward  x Wᵀ", 1, 2048, 384, 128, false, true},
    {"qkv dx  dy W", 1, 2048, 128, 384, false, false},
    {"qkv dW  dyᵀ x", 1, 384, 128, 2048, true, false},
    {"attn-out forward", 1, 2048, 128, 128, false, true},
    {"attn-out dx", 1, 2048, 128, 128, false, false},
    {"attn-out dW", 1, 128, 128, 2048, true, false},
    {"mlp-up forward", 1, 2048, 512, 128, false, true},
    {"mlp-up dx", 1, 2048, 128, 512, false, false},
    {"mlp-up dW", 1, 512, 128, 2048, true, false},
    {"mlp-down forward", 1, 2048, 128, 512, false, true},
    {"mlp-down dx", 1, 2048, 512, 128, false, false},
    {"mlp-down dW", 1, 128, 512, 2048, true, false},
    {"lm-head forward", 1, 2048, 256, 128, false, true},
    {"lm-head dx", 1, 2048, 128, 256, false, false},
    {"lm-head dW", 1, 256, 128, 2048, true, false},
    {"attn scores  Q Kᵀ", 64, 128, 128, 32, false, true},
    {"attn values  P V", 64, 128, 32, 128, false, false},
    {"attn dP  dO Vᵀ", 64, 128, 128, 32, false, true},
    {"attn dV  Pᵀ dO", 64, 128, 32, 128, true, false},
    {"attn dQ  dS K", 64, 128, 32, 128, false, false},
    {"attn dK  dSᵀ Q", 64, 128, 32, 128, true, false},
};

// The C interfaces, looked up by name in each library.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;  // CBLAS_ORDER / CBLAS_TRANSPOSE values
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                            int);
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
using SetThreads = void (*)(int);

// One library's single-matrix GEMM, and how to set its thread count.
struct Library {
  std::string name;
  void* handle = nullptr;
  CblasSgemm cblas = nullptr;
  DnnlSgemm dnnl = nullptr;
  SetThreads set_threads = nullptr;

  bool loaded() const { return cblas || dnnl; }

  void gemm(const GemmShape& s, const float* a, const float* b, float* c, int rows) const {
    const int lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
    if (cblas)
      cblas(kRowMajor, s.trans_a ? kTrans : kNoTrans, s.trans_b ? kTrans : kNoTrans, rows, s.n, s.k, 1.0f, a, lda, b,
            ldb, 0.0f, c, s.n);
    else
      dnnl(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', rows, s.n, s.k, 1.0f, a, lda, b, ldb, 0.0f, c, s.n);
  }
};

Library load(const std::string& name, const char* file, const char* gemm_symbol, const char* threads_symbol) {
  Library lib{name};
  lib.handle = dlopen(file, RTLD_NOW | RTLD_LOCAL);
  if (!lib.handle) return lib;
  void* gemm = dlsym(lib.handle, gemm_symbol);
  if (std::string(gemm_symbol) == "dnnl_sgemm") lib.dnnl = reinterpret_cast<DnnlSgemm>(gemm);
  else lib.cblas = reinterpret_cast<CblasSgemm>(gemm);
  if (threads_symbol) lib.set_threads = reinterpret_cast<SetThreads>(dlsym(lib.handle, threads_symbol));
  return lib;
}

// OpenMP's thread count for the libraries that run on it (BLIS and oneDNN here), through libgomp itself.
void set_omp_threads(int threads) {
  static auto set = reinterpret_cast<SetThreads>(dlsym(dlopen("libgomp.so.1", RTLD_NOW), "omp_set_num_threads"));
  if (set) set(threads);
}

struct Operands {
  std::vector<float> a, b, c;
};

Operands make_operands(const GemmShape& s) {
  Generator gen(0);
  auto fill = [&](int64_t count) {
    const Tensor t = randn({count}, {}, gen);
    return std::vector<float>(t.data<float>(), t.data<float>() + count);
  };
  return {fill(int64_t{s.batch} * s.m * s.k), fill(int64_t{s.batch} * s.k * s.n),
          std::vector<float>(size_t(s.batch) * s.m * s.n)};
}

// hcgrad's row blocking (core/cpu/matmul.cpp): about one block per thread when the batch is small.
void run_blocks(const Library& lib, const GemmShape& s, Operands& o, int threads) {
  const int blocks_wanted = std::max(1, (threads + s.batch - 1) / s.batch);
  // A transposed A is read by columns, so its row blocks are column offsets of the stored matrix.
  const int row_block = std::max(64, (s.m + blocks_wanted - 1) / blocks_wanted), blocks = (s.m + row_block - 1) / row_block;
  cpu::parallel_for(0, int64_t{s.batch} * blocks, 1, [&](int64_t t0, int64_t t1) {
    set_omp_threads(1);  // per thread: OpenMP's thread count is a per-thread setting
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t i = task / blocks, r0 = (task % blocks) * row_block;
      const int rows = static_cast<int>(std::min<int64_t>(s.m - r0, row_block));
      const float* a = o.a.data() + i * s.m * s.k + (s.trans_a ? r0 : r0 * s.k);
      lib.gemm(s, a, o.b.data() + i * s.k * s.n, o.c.data() + i * s.m * s.n + r0 * s.n, rows);
    }
  });
}

void run_own(const Library& lib, const GemmShape& s, Operands& o) {
  for (int i = 0; i < s.batch; ++i)
    lib.gemm(s, o.a.data() + int64_t{i} * s.m * s.k, o.b.data() + int64_t{i} * s.k * s.n,
             o.c.data() + int64_t{i} * s.m * s.n, s.m);
}

double gflops(const GemmShape& s, double seconds) { return 2.0 * s.batch * s.m * s.n * s.k / seconds / 1e9; }

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc >= 2 ? std::atoi(argv[1]) : 2, rounds = argc >= 3 ? std::atoi(argv[2]) : 5;
  if (threads <= 0 || rounds <= 0) {
    std::fprintf(stderr, "usage: %s [threads] [rounds]  (both positive)\n", argv[0]);
    return 2;
  }
  set_num_threads(threads);
  std::vector<Library> libs = {
      load("OpenBLAS", "libopenblas.so.0", "cblas_sgemm", "openblas_set_num_threads"),
      load("BLIS", "libblis.so.4", "cblas_sgemm", "bli_thread_set_num_threads"),
      load("oneDNN", "libdnnl.so.2", "dnnl_sgemm", nullptr),
  };
  for (const Library& lib : libs)
    if (!lib.loaded()) std::fprintf(stderr, "%s: not found (%s), its columns stay empty\n", lib.name.c_str(), dlerror());

  std::printf("| shape | batch × M×N×K | hcgrad (Eigen) |");
  for (const Library& lib : libs) std::printf(" %s own | %s blocks |", lib.name.c_str(), lib.name.c_str());
  std::printf("\n|---|---|---|");
  for (size_t i = 0; i < libs.size(); ++i) std::printf("---|---|");
  std::printf("\n");
  const int calls = 20;
  for (const GemmShape& s : kShapes) {
    Operands o = make_operands(s);
    // hcgrad's matmul on views with the same layouts (a transposed operand is a .t() view, as in Linear).
    Tensor a = from_vector(std::vector<double>(o.a.begin(), o.a.end()),
                           s.trans_a ? Shape{s.batch, s.k, s.m} : Shape{s.batch, s.m, s.k})
                   .to(DType::Float32);
    Tensor b = from_vector(std::vector<double>(o.b.begin(), o.b.end()),
                           s.trans_b ? Shape{s.batch, s.n, s.k} : Shape{s.batch, s.k, s.n})
                   .to(DType::Float32);
    if (s.trans_a) a = a.transpose(-1, -2);
    if (s.trans_b) b = b.transpose(-1, -2);
    std::vector<std::function<void()>> runs = {[&] { (void)matmul(a, b); }};
    for (const Library& lib : libs) {
      if (!lib.loaded()) continue;
      runs.push_back([&, lib] {
        if (lib.set_threads) lib.set_threads(threads);
        set_omp_threads(threads);
        run_own(lib, s, o);
      });
      runs.push_back([&, lib] {
        if (lib.set_threads) lib.set_threads(1);
        run_blocks(lib, s, o, threads);
      });
    }
    // Alternate the contenders round by round; keep each one's best round (median of `calls` calls).
    std::vector<double> best(runs.size(), 1e30);
    for (int r = 0; r < rounds; ++r)
      for (size_t i = 0; i < runs.size(); ++i)
        best[i] = std::min(best[i], median_seconds([&] {
                             for (int c = 0; c < 5; ++c) runs[i]();
                           }, calls, 2) / 5);
    std::printf("| %s | %d × %d×%d×%d | %.0f |", s.name, s.batch, s.m, s.n, s.k, gflops(s, best[0]));
    size_t i = 1;
    for (const Library& lib : libs) {
      if (!lib.loaded()) {
        std::printf(" | |");
        continue;
      }
      std::printf(" %.0f | %.0f |", gflops(s, best[i]), gflops(s, best[i + 1]));
      i += 2;
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
