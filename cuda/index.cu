// Gathering and scatter-adding rows on the GPU (embedding forward and backward, index_select), and the
// places of gather and scatter_add. Tensors
// are split around `dim` into [outer, size, inner]; the indices are contiguous int64. One thread per element
// moved. The op does not check GPU indices on the host (that would wait for the GPU): the kernels do, and
// record a bad one for the host to report (cuda/index_fault.h), reading or writing nothing for it (out gets 0).
//
// index_add sums colliding rows with atomicAdd, so the order of the additions (and the last bits of a
// float sum) may change from run to run, as PyTorch's index_add_ on CUDA. The CPU kernel is deterministic.
#include "hcgrad/core/dispatch.h"
#include "hcgrad/core/kernels.h"
#include "hcgrad/cuda/launch.cuh"

namespace hcgrad::cuda {

namespace {

// out[o, i, c] = x[o, index[i], c]; out is [outer, n, inner], x is [outer, size, inner].
template <class T>
__global__ void index_select_kernel(T* out, const T* x, const int64_t* index, int64_t outer, int64_t size, int64_t n,
                                    int64_t inner, IndexFault* fault) {
  const int64_t total = outer * n * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % inner, i = (e / inner) % n, o = e / (inner * n);
    const int64_t j = index[i];
    if (j < 0 || j >= size) {
      record_index_fault(fault, IndexFaultKernel::IndexSelect, j, size);
      out[e] = T(0);
      continue;
    }
    out[e] = x[(o * size + j) * inner + c];
  }
}

// out[o, index[i], c] += src[o, i, c]; src is [outer, n, inner], out is [outer, size, inner].
template <class T>
__global__ void index_add_kernel(T* out, const T* src, const int64_t* index, int64_t outer, int64_t size, int64_t n,
                                 int64_t inner, IndexFault* fault) {
  const int64_t total = outer * n * inner;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % inner, i = (e / inner) % n, o = e / (inner * n);
    const int64_t j = index[i];
    if (j < 0 || j >= size) {
      record_index_fault(fault, IndexFaultKernel::IndexAdd, j, size);
      continue;
    }
    atomicAdd(out + (o * size + j) * inner + c, src[e]);
  }
}

// places[p] = (p's offset in x with its dim coordinate dropped: walk's stride there is 0) + index[p] * dim_stride;
// one thread per p.
__global__ void gather_places_kernel(int64_t* places, const int64_t* index, int64_t n, StridedIndex<1> walk,
                                     int64_t dim_stride, int64_t size, IndexFault* fault) {
  for (int64_t p = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; p < n; p += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = index[p];
    if (j < 0 || j >= size) {
      record_index_fault(fault, IndexFaultKernel::GatherPlaces, j, size);
      places[p] = 0;  // a valid place: the gather reads, or the scatter adds to, element 0 instead
      continue;
    }
    int64_t offset[1];
    walk.offsets(p, offset);
    places[p] = offset[0] + j * dim_stride;
  }
}

}  // namespace

void gather_places(const char* op, const Tensor& places, const Tensor& index, const Shape& index_shape,
                   const Shape& x_shape, int64_t dim) {
  const int64_t n = index.numel();
  if (n == 0) return;
  HC_CHECK(x_shape.ndim() <= kMaxDims, ShapeError, op, ": the CUDA kernels take at most ", kMaxDims,
           " dims, got ", x_shape);
  // index's shape walked with x's contiguous strides, dim's stride 0 (its coordinate comes from index).
  StridedIndex<1> walk;
  walk.ndim = static_cast<int>(x_shape.ndim());
  const Strides strides = contiguous_strides(x_shape);
  for (int k = 0; k < walk.ndim; ++k) {
    walk.sizes[k] = index_shape[k];
    walk.strides[0][k] = k == dim ? 0 : strides[k];
  }
  gather_places_kernel<<<blocks_for(n), kThreads, 0, stream_for(places)>>>(
      ptr<int64_t>(places), ptr<int64_t>(index), n, walk, strides[dim], x_shape[dim], index_fault());
  HC_CUDA_LAUNCH_CHECK(op);
}

void index_select(const Tensor& out, const Tensor& x, int64_t dim, const Tensor& index) {
  const DimSplit in = split_around(x.shape(), dim);
  const int64_t n = index.numel(), total = in.outer * n * in.inner;
  if (total == 0) return;
  dispatch_all("index_select", x.dtype(), [&]<class T>() {
    index_select_kernel<T><<<blocks_for(total), kThreads, 0, stream_for(out)>>>(
        ptr<T>(out), ptr<T>(x), ptr<int64_t>(index), in.outer, in.size, n, in.inner, index_fault());
    HC_CUDA_LAUNCH_CHECK("index_select");
  });
}

void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const DimSplit dst = split_around(out.shape(), dim);
  const int64_t n = index.numel(), total = dst.outer * n * dst.inner;
  if (total == 0) return;
  dispatch_floating("index_add", out.dtype(), [&]<class T>() {
    index_add_kernel<T><<<blocks_for(total), kThreads, 0, stream_for(out)>>>(
        ptr<T>(out), ptr<T>(src), ptr<int64_t>(index), dst.outer, dst.size, n, dst.inner, index_fault());
    HC_CUDA_LAUNCH_CHECK("index_add");
  });
}

}  // namespace hcgrad::cuda
