// The CUDA runtime of cuda/runtime.h and cuda/common.h: which GPUs exist, one stream per GPU, errors.
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "hcgrad/cuda/common.h"
#include "hcgrad/cuda/runtime.h"

namespace hcgrad::cuda {

namespace {

// Asked once: how many GPUs, or why none. A machine without a driver answers cudaErrorInsufficientDriver
// or cudaErrorNoDevice; either way there is nothing to run on.
struct Devices {
  int count = 0;
  std::string reason;
};

const Devices& devices() {
  static const Devices found = [] {
    Devices d;
    const cudaError_t status = cudaGetDeviceCount(&d.count);
    if (status != cudaSuccess) {
      d.count = 0;
      d.reason = std::string("no usable CUDA driver or GPU (cudaGetDeviceCount: ") + cudaGetErrorString(status) + ")";
      cudaGetLastError();  // clear the sticky error so later calls start clean
    } else if (d.count == 0) {
      d.reason = "no CUDA-capable GPU on this machine";
    }
    return d;
  }();
  return found;
}

// Shortens __FILE__ to the part from "cuda/" on, so messages do not carry the build machine's paths.
const char* short_path(const char* file) {
  const char* found = nullptr;
  for (const char* p = std::strstr(file, "cuda/"); p; p = std::strstr(p + 1, "cuda/")) found = p;
  return found ? found : file;
}

}  // namespace

bool is_available() { return devices().count > 0; }
int device_count() { return devices().count; }
std::string unavailable_reason() { return devices().reason; }

std::string device_name(int device) {
  HC_CHECK(device >= 0 && device < device_count(), DeviceError, "device_name: no device cuda:", device, " (",
           device_count(), " GPUs)");
  cudaDeviceProp prop{};
  HC_CUDA_CHECK("device_name", cudaGetDeviceProperties(&prop, device));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

void throw_error(const char* op, cudaError_t status, const char* call, const char* file, int line) {
  throw DeviceError(detail::concat(op, ": CUDA error: ", cudaGetErrorString(status), " (", call, ", ",
                                   short_path(file), ":", line, ")"));
}

cudaStream_t stream_for(int device) {
  // One non-blocking stream per device, created on first use and kept for the life of the process.
  static std::mutex mutex;
  static std::vector<cudaStream_t> streams;
  thread_local int current = -1;
  if (current != device) {
    HC_CHECK(device >= 0 && device < device_count(), DeviceError, "cuda: no device cuda:", device, " (",
             device_count(), " GPUs", is_available() ? "" : ": " + unavailable_reason(), ")");
    HC_CUDA_CHECK("cuda", cudaSetDevice(device));
    current = device;
  }
  std::lock_guard<std::mutex> lock(mutex);
  if (streams.empty()) streams.resize(static_cast<size_t>(device_count()), nullptr);
  cudaStream_t& stream = streams[static_cast<size_t>(device)];
  if (!stream) HC_CUDA_CHECK("cuda", cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

void synchronize() {
  for (int d = 0; d < device_count(); ++d) HC_CUDA_CHECK("synchronize", cudaStreamSynchronize(stream_for(d)));
}

void copy_between_devices(const Tensor& dst, const Tensor& src) {
  HC_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous() && src.is_contiguous(),
           Error, "to: copy between devices needs contiguous tensors of one shape and dtype, got ", src.shape(), " ",
           src.dtype(), " and ", dst.shape(), " ", dst.dtype());
  const size_t nbytes = static_cast<size_t>(src.numel()) * itemsize(src.dtype());
  if (nbytes == 0) return;
  if (src.device().is_cpu()) {
    // From pageable host memory the copy has read the source when the call returns.
    cudaStream_t stream = stream_for(dst);
    HC_CUDA_CHECK("to", cudaMemcpyAsync(dst.raw_data(), src.raw_data(), nbytes, cudaMemcpyHostToDevice, stream));
  } else if (dst.device().is_cpu()) {
    cudaStream_t stream = stream_for(src);  // after every kernel that wrote src
    HC_CUDA_CHECK("to", cudaMemcpyAsync(dst.raw_data(), src.raw_data(), nbytes, cudaMemcpyDeviceToHost, stream));
    HC_CUDA_CHECK("to", cudaStreamSynchronize(stream));
  } else {
    // GPU to GPU: wait for the source's producers, then copy peer to peer on the destination's stream.
    HC_CUDA_CHECK("to", cudaStreamSynchronize(stream_for(src)));
    cudaStream_t stream = stream_for(dst);
    HC_CUDA_CHECK("to", cudaMemcpyPeerAsync(dst.raw_data(), dst.device().index, src.raw_data(), src.device().index,
                                            nbytes, stream));
  }
}

}  // namespace hcgrad::cuda
