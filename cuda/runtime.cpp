// The CUDA runtime of cuda/runtime.h and cuda/common.h: which GPUs exist, one stream per GPU, errors.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
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
    // A GPU older than every architecture this build has code for (CMAKE_CUDA_ARCHITECTURES) would fail at its
    // first kernel with "no kernel image"; say so here instead, so tests skip and programs fall back to the CPU.
    // cudaGetDeviceProperties creates no context on the GPU.
    for (int device = 0; device < d.count; ++device) {
      cudaDeviceProp prop{};
      if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) continue;
      if (prop.major * 10 + prop.minor < HCGRAD_CUDA_MIN_ARCH) {
        d.reason = std::string("cuda:") + std::to_string(device) + " is " + prop.name + " (sm_" +
                   std::to_string(prop.major) + std::to_string(prop.minor) + "), older than sm_" +
                   std::to_string(HCGRAD_CUDA_MIN_ARCH) + ", the oldest this build has kernels for (rebuild with " +
                   "CMAKE_CUDA_ARCHITECTURES naming it, or hide it with CUDA_VISIBLE_DEVICES)";
        d.count = 0;
        break;
      }
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

bool sync_after_launch() {
  static const bool on = [] {
    const char* value = std::getenv("HCGRAD_CUDA_SYNC");
    return value && *value && std::strcmp(value, "0") != 0;
  }();
  return on;
}

namespace {
// Errors a kernel raises while it runs: reported by whichever CUDA call comes next, so without
// HCGRAD_CUDA_SYNC the op named may not be the one whose kernel failed.
bool raised_by_a_running_kernel(cudaError_t status) {
  return status == cudaErrorIllegalAddress || status == cudaErrorLaunchFailure ||
         status == cudaErrorMisalignedAddress || status == cudaErrorIllegalInstruction || status == cudaErrorAssert ||
         status == cudaErrorHardwareStackError || status == cudaErrorInvalidPc;
}
}  // namespace

void throw_error(const char* op, cudaError_t status, const char* call, const char* file, int line) {
  const bool maybe_earlier = raised_by_a_running_kernel(status) && !sync_after_launch();
  throw DeviceError(detail::concat(op, ": CUDA error: ", cudaGetErrorString(status), " (", call, ", ",
                                   short_path(file), ":", line, ")",
                                   maybe_earlier ? "; kernels run asynchronously, so an earlier op's kernel may have "
                                                   "caused it: rerun with HCGRAD_CUDA_SYNC=1 to check each kernel as "
                                                   "it finishes"
                                                 : ""));
}

void check_launch(const char* op, const char* file, int line) {
  cudaError_t status = cudaGetLastError();  // a bad launch configuration
  if (status == cudaSuccess && sync_after_launch()) status = cudaDeviceSynchronize();  // a fault while it ran
  if (status != cudaSuccess) throw_error(op, status, "kernel launch", file, line);
  if (sync_after_launch()) check_index_fault();
}

namespace {
// One non-blocking stream per device, created on first use and kept for the life of the process.
std::mutex streams_mutex;
std::vector<cudaStream_t> streams;  // by device; null until the device is first used
}  // namespace

std::vector<int> used_devices() {
  std::lock_guard<std::mutex> lock(streams_mutex);
  std::vector<int> used;
  for (size_t d = 0; d < streams.size(); ++d)
    if (streams[d]) used.push_back(static_cast<int>(d));
  return used;
}

cudaStream_t stream_for(int device) {
  thread_local int current = -1;
  if (current != device) {
    HC_CHECK(device >= 0 && device < device_count(), DeviceError, "cuda: no device cuda:", device, " (",
             device_count(), " GPUs", is_available() ? "" : ": " + unavailable_reason(), ")");
    HC_CUDA_CHECK("cuda", cudaSetDevice(device));
    current = device;
  }
  std::lock_guard<std::mutex> lock(streams_mutex);
  if (streams.empty()) streams.resize(static_cast<size_t>(device_count()), nullptr);
  cudaStream_t& stream = streams[static_cast<size_t>(device)];
  if (!stream) HC_CUDA_CHECK("cuda", cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  return stream;
}

// Only the GPUs this process has used: touching another would create a context there (hundreds of MB), and
// fail outright on a GPU another process holds in exclusive mode.
void synchronize() {
  for (int d : used_devices()) HC_CUDA_CHECK("synchronize", cudaStreamSynchronize(stream_for(d)));
  check_index_fault();
}

namespace {
std::atomic<IndexFault*> index_fault_record{nullptr};  // made by the first kernel that checks indices
}  // namespace

IndexFault* index_fault() {
  // Mapped (the GPU writes to it over the bus) and portable (every device's kernels may): with unified
  // addressing the host pointer is also the device pointer. Made on first use, by a kernel's launch, so a
  // process that never checks an index on a GPU (or has none) never allocates it.
  static IndexFault* record = [] {
    void* memory = nullptr;
    HC_CUDA_CHECK("cuda", cudaHostAlloc(&memory, sizeof(IndexFault), cudaHostAllocMapped | cudaHostAllocPortable));
    IndexFault* made = new (memory) IndexFault();
    index_fault_record = made;
    return made;
  }();
  return record;
}

void check_index_fault() {
  IndexFault* fault = index_fault_record;
  if (!fault || !fault->recorded) return;
  const IndexFault found = *fault;
  *fault = IndexFault();
  const char* what = found.kernel == IndexFaultKernel::CrossEntropy   ? "cross_entropy: target "
                     : found.kernel == IndexFaultKernel::IndexAdd     ? "index_add (a gather's backward): index "
                     : found.kernel == IndexFaultKernel::GatherPlaces ? "gather, scatter_add or nll_loss: index "
                                                                      : "index_select (index_select, embedding): index ";
  throw IndexError(detail::concat(what, found.index, " out of range (valid: 0..", found.limit - 1,
                                  ") in a GPU kernel; reported at this wait for the GPU, the op that queued it ran "
                                  "earlier (HCGRAD_CUDA_SYNC=1 reports it at the op)"));
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
    check_index_fault();
  } else {
    // GPU to GPU: wait for the source's producers, then copy peer to peer on the destination's stream. The
    // copy still reads src after this returns, while src's block belongs to the source device's allocator,
    // whose safety rests on one stream per device (cuda/allocator.cpp): so the source's stream waits for the
    // copy (an event) before any later kernel there, such as one writing a reuse of the block, may run.
    cudaStream_t src_stream = stream_for(src);
    HC_CUDA_CHECK("to", cudaStreamSynchronize(src_stream));
    cudaStream_t dst_stream = stream_for(dst);  // makes dst's device current: the event is recorded there
    cudaEvent_t copied = nullptr;
    HC_CUDA_CHECK("to", cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
    HC_CUDA_CHECK("to", cudaMemcpyPeerAsync(dst.raw_data(), dst.device().index, src.raw_data(), src.device().index,
                                            nbytes, dst_stream));
    HC_CUDA_CHECK("to", cudaEventRecord(copied, dst_stream));
    HC_CUDA_CHECK("to", cudaStreamWaitEvent(stream_for(src), copied, 0));
    HC_CUDA_CHECK("to", cudaEventDestroy(copied));  // released once the copy has passed it
  }
}

}  // namespace hcgrad::cuda
