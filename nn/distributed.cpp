// nn::distributed over MPI (the API and its rules: nn/distributed.h). Built with HCGRAD_WITH_MPI when CMake
// found MPI; without it every function below is the world of one process.
#include "hcgrad/nn/distributed.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/ops.h"

#ifdef HCGRAD_WITH_MPI
#include <mpi.h>
#endif

namespace hcgrad::nn::distributed {

namespace {

// A collective's tensor: contiguous, on the CPU, float32 or float64 (MPI reads and writes its memory).
void check_collective(const char* op, const Tensor& t) {
  check_floating(op, t);
  HC_CHECK(t.device().is_cpu(), DeviceError, "distributed::", op, ": tensor ", t.shape(), " is on ", t.device(),
           "; collectives on GPU tensors need NCCL, which this build does not have");
  HC_CHECK(t.is_contiguous(), Error, "distributed::", op, ": tensor ", t.shape(),
           " must be contiguous (MPI reads its memory as one block); pass t.contiguous() and copy back");
}

#ifdef HCGRAD_WITH_MPI
// An MPI call's result as an hcgrad::Error naming the operation, this rank and MPI's own words.
void check_mpi(int code, const char* op) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  HC_CHECK(false, Error, "distributed::", op, " failed on rank ", rank(), " of ", world_size(), ": ",
           std::string(text, static_cast<size_t>(length)));
}

MPI_Datatype mpi_type(DType dtype) { return dtype == DType::Float64 ? MPI_DOUBLE : MPI_FLOAT; }

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max: return MPI_MAX;
    case ReduceOp::Min: return MPI_MIN;
    default: return MPI_SUM;
  }
}

// MPI counts elements in int: body(data, count) over pieces of at most 2^30 elements of t.
template <class Body>
void for_pieces(const Tensor& t, const Body& body) {
  char* data = static_cast<char*>(t.raw_data());
  const int64_t element = static_cast<int64_t>(itemsize(t.dtype())), piece = int64_t{1} << 30;
  for (int64_t done = 0; done < t.numel(); done += piece)
    body(data + done * element, static_cast<int>(std::min(piece, t.numel() - done)));
}

void finalize_at_exit() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}
#endif

}  // namespace

bool built_with_mpi() {
#ifdef HCGRAD_WITH_MPI
  return true;
#else
  return false;
#endif
}

bool launched_by_mpirun() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

bool initialized() {
#ifdef HCGRAD_WITH_MPI
  int flag = 0;
  MPI_Initialized(&flag);
  return flag != 0;
#else
  return false;
#endif
}

void init([[maybe_unused]] int* argc, [[maybe_unused]] char*** argv) {
#ifdef HCGRAD_WITH_MPI
  if (initialized()) return;
  check_mpi(MPI_Init(argc, argv), "init");
  // Errors come back as codes (raised as hcgrad::Error with the rank) instead of aborting without a word.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  std::atexit(finalize_at_exit);
#endif
}

int rank() {
#ifdef HCGRAD_WITH_MPI
  if (!initialized()) return 0;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
#else
  return 0;
#endif
}

int world_size() {
#ifdef HCGRAD_WITH_MPI
  if (!initialized()) return 1;
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
#else
  return 1;
#endif
}

void all_reduce(const Tensor& t, [[maybe_unused]] ReduceOp op) {
  check_collective("all_reduce", t);
  if (world_size() == 1 || t.numel() == 0) return;
#ifdef HCGRAD_WITH_MPI
  for_pieces(t, [&](void* data, int count) {
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, count, mpi_type(t.dtype()), mpi_op(op), MPI_COMM_WORLD),
              "all_reduce");
  });
#endif
}

void broadcast(const Tensor& t, int root) {
  check_collective("broadcast", t);
  HC_CHECK(root >= 0 && root < world_size(), Error, "distributed::broadcast: root ", root, " is not a rank of ",
           world_size());
  if (world_size() == 1 || t.numel() == 0) return;
#ifdef HCGRAD_WITH_MPI
  for_pieces(t, [&](void* data, int count) {
    check_mpi(MPI_Bcast(data, count, mpi_type(t.dtype()), root, MPI_COMM_WORLD), "broadcast");
  });
#endif
}

void broadcast_parameters(const Module& module, int root) {
  if (world_size() == 1) return;
  autograd::NoGradGuard no_grad;
  for (const Tensor& p : module.parameters()) broadcast(p, root);
}

void average_gradients(const std::vector<Tensor>& params) {
  if (world_size() == 1) return;
  autograd::NoGradGuard no_grad;
  for (const DType dtype : {DType::Float32, DType::Float64}) {
    std::vector<Tensor> flat;  // each parameter's gradient (or zeros), flattened, in order
    std::vector<const Tensor*> owners;
    for (const Tensor& p : params) {
      if (p.dtype() != dtype) continue;
      HC_CHECK(p.device().is_cpu(), DeviceError, "distributed::average_gradients: parameter ", p.shape(), " is on ",
               p.device(), "; GPU gradients need NCCL, which this build does not have");
      flat.push_back(p.grad().defined() ? p.grad().reshape({p.numel()}) : zeros({p.numel()}, {.dtype = dtype}));
      owners.push_back(&p);
    }
    if (flat.empty()) continue;
    Tensor buffer = cat(flat, 0);  // one message instead of one per parameter
    all_reduce(buffer);
    buffer.mul_(1.0 / world_size());
    int64_t offset = 0;
    for (const Tensor* p : owners) {
      if (p->grad().defined()) p->grad().copy_(buffer.narrow(0, offset, p->numel()).reshape(p->shape()));
      offset += p->numel();
    }
  }
}

void abort_all(int code) {
#ifdef HCGRAD_WITH_MPI
  if (world_size() > 1) {
    std::fflush(nullptr);
    MPI_Abort(MPI_COMM_WORLD, code);
  }
#endif
  std::exit(code);
}

void barrier() {
  if (world_size() == 1) return;
#ifdef HCGRAD_WITH_MPI
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier");
#endif
}

}  // namespace hcgrad::nn::distributed
