// nn::distributed over MPI (the API and its rules: nn/distributed.h). Built with HCGRAD_WITH_MPI when CMake
// found MPI; without it every function below is the world of one process.
#include "hcgrad/nn/distributed.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "hcgrad/autograd/grad_mode.h"
#include "hcgrad/autograd/node.h"
#include "hcgrad/core/creation.h"
#include "hcgrad/core/gpu_collectives.h"
#include "hcgrad/core/ops.h"

#ifdef HCGRAD_WITH_MPI
#include <mpi.h>
#endif

namespace hcgrad::nn::distributed {

namespace {

// A collective's tensor: contiguous (MPI and NCCL read its memory as one block), float32 or float64.
void check_collective(const char* op, const Tensor& t) {
  check_floating(op, t);
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

static_assert(static_cast<int>(ReduceOp::Max) == static_cast<int>(cuda::NcclOp::Max) &&
              static_cast<int>(ReduceOp::Min) == static_cast<int>(cuda::NcclOp::Min));

// GPU `device` joins the ranks' NCCL communicator at its first collective, which every rank reaches in the
// same order: rank 0 makes the communicator's id and MPI hands it to the others.
void join_nccl(int device) {
  if (cuda::nccl_joined(device)) return;
  std::string id = rank() == 0 ? cuda::nccl_unique_id() : std::string(cuda::kNcclUniqueIdBytes, '\0');
  check_mpi(MPI_Bcast(id.data(), static_cast<int>(id.size()), MPI_BYTE, 0, MPI_COMM_WORLD), "NCCL set-up");
  cuda::nccl_join(id, rank(), world_size(), device);
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

int local_rank() {
#ifdef HCGRAD_WITH_MPI
  if (!initialized()) return 0;
  static const int local = [] {  // the rank in a communicator of the ranks that share this machine's memory
    MPI_Comm machine;
    check_mpi(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &machine), "local_rank");
    int r = 0;
    MPI_Comm_rank(machine, &r);
    MPI_Comm_free(&machine);
    return r;
  }();
  return local;
#else
  return 0;
#endif
}

void all_reduce(const Tensor& t, [[maybe_unused]] ReduceOp op) {
  check_collective("all_reduce", t);
  if (world_size() == 1 || t.numel() == 0) return;
#ifdef HCGRAD_WITH_MPI
  if (!t.device().is_cpu()) {  // over NCCL, GPU to GPU; without NCCL through a copy in host memory
    if (cuda::nccl_built()) {
      join_nccl(t.device().index);
      cuda::nccl_all_reduce(t, static_cast<cuda::NcclOp>(op));
    } else {
      const Tensor host = t.to(Device::cpu());
      all_reduce(host, op);
      Tensor(t).copy_(host);  // a handle on the same tensor
    }
    return;
  }
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
  if (!t.device().is_cpu()) {
    if (cuda::nccl_built()) {
      join_nccl(t.device().index);
      cuda::nccl_broadcast(t, root);
    } else {
      const Tensor host = t.to(Device::cpu());
      broadcast(host, root);
      Tensor(t).copy_(host);  // a handle on the same tensor
    }
    return;
  }
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

// ---- averaging gradients in buckets ----

struct GradientAverager::State {
  struct Bucket {
    std::vector<size_t> members;   // indices into `params`, last parameter first
    std::vector<int64_t> offsets;  // each member's first element in `buffer`
    Tensor buffer;                 // [sum of the members' sizes], their dtype and device
    size_t waiting = 0;            // members whose gradient has not arrived in this pass
#ifdef HCGRAD_WITH_MPI
    std::vector<MPI_Request> requests;  // the all-reduce in flight, one per piece of 2^30 elements
#endif
  };
  std::vector<Tensor> params;
  std::vector<size_t> bucket_of;  // parameter index -> its bucket
  std::vector<bool> arrived;      // in this pass
  std::vector<Bucket> buckets;
  size_t started = 0;  // buckets [0, started) are on their way; they start in index order on every rank
  size_t settled = 0;  // buckets [0, settled) have finished their all-reduce (as far as MPI_Testall has seen)
  std::vector<std::shared_ptr<autograd::Node>> accumulators;  // the parameters' sinks, kept: they hold the hooks

  bool in_flight() const { return started > 0; }

  // Copies the members' gradients (zeros where a member has none) into the buffer and starts its all-reduce.
  void start(Bucket& bucket) {
    for (size_t k = 0; k < bucket.members.size(); ++k) {
      const Tensor& p = params[bucket.members[k]];
      Tensor slot = bucket.buffer.narrow(0, bucket.offsets[k], p.numel());
      if (p.grad().defined())
        slot.copy_(p.grad().reshape({p.numel()}));
      else
        slot.zero_();
    }
#ifdef HCGRAD_WITH_MPI
    if (bucket.buffer.device().is_cpu()) {
      for_pieces(bucket.buffer, [&](void* data, int count) {
        bucket.requests.emplace_back();
        check_mpi(MPI_Iallreduce(MPI_IN_PLACE, data, count, mpi_type(bucket.buffer.dtype()), MPI_SUM, MPI_COMM_WORLD,
                                 &bucket.requests.back()),
                  "GradientAverager (MPI_Iallreduce)");
      });
      return;
    }
#endif
    all_reduce(bucket.buffer);  // blocking
  }

  // The hook: parameter i's gradient is final for this pass.
  void arrive(size_t i) {
    HC_CHECK(!arrived[i], Error, "distributed::GradientAverager: parameter ", i, " ", params[i].shape(),
             " got a second gradient before finish(); call finish() after every backward(), or turn overlap off "
             "to accumulate gradients over several backward passes");
    arrived[i] = true;
    --buckets[bucket_of[i]].waiting;
    while (started < buckets.size() && buckets[started].waiting == 0) start(buckets[started++]);
#ifdef HCGRAD_WITH_MPI
    // Open MPI moves its non-blocking collectives along only inside MPI calls; any test moves all of them.
    // So each hook tests the oldest bucket not yet seen finished, and the next ones while they are: a few
    // tests per hook, however many buckets are in flight.
    while (settled < started) {
      int done = 1;
      auto& requests = buckets[settled].requests;
      if (!requests.empty())
        check_mpi(MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE),
                  "GradientAverager (MPI_Testall)");
      if (!done) break;
      ++settled;
    }
#endif
  }

  void finish() {
    while (started < buckets.size()) start(buckets[started++]);
    const double inverse = 1.0 / world_size();
    for (Bucket& bucket : buckets) {
#ifdef HCGRAD_WITH_MPI
      if (!bucket.requests.empty())
        check_mpi(MPI_Waitall(static_cast<int>(bucket.requests.size()), bucket.requests.data(), MPI_STATUSES_IGNORE),
                  "GradientAverager (MPI_Waitall)");
      bucket.requests.clear();
#endif
      bucket.buffer.mul_(inverse);
      for (size_t k = 0; k < bucket.members.size(); ++k) {
        const Tensor& p = params[bucket.members[k]];
        if (p.grad().defined())
          p.grad().copy_(bucket.buffer.narrow(0, bucket.offsets[k], p.numel()).reshape(p.shape()));
      }
      bucket.waiting = bucket.members.size();
    }
    std::fill(arrived.begin(), arrived.end(), false);
    started = settled = 0;
  }
};

GradientAverager::GradientAverager(std::vector<Tensor> params, GradientAveragerOptions options) {
  HC_CHECK(options.bucket_bytes > 0, Error, "distributed::GradientAverager: bucket_bytes must be positive, got ",
           options.bucket_bytes);
  if (world_size() == 1) return;
  autograd::NoGradGuard no_grad;
  state_ = std::make_shared<State>();
  State& s = *state_;
  for (const Tensor& p : params) {  // parameters that can have a gradient, each once
    if (!p.requires_grad()) continue;
    check_floating("GradientAverager", p);
    const bool repeated = std::any_of(s.params.begin(), s.params.end(),
                                      [&](const Tensor& q) { return q.impl_ptr() == p.impl_ptr(); });
    if (!repeated) s.params.push_back(p);
  }
  s.bucket_of.resize(s.params.size());
  s.arrived.assign(s.params.size(), false);
  // Buckets, last parameter first: backward produces the last layers' gradients first.
  int64_t bucket_elements = 0;
  for (size_t i = s.params.size(); i-- > 0;) {
    const Tensor& p = s.params[i];
    const bool fits = !s.buckets.empty() && s.buckets.back().buffer.dtype() == p.dtype() &&
                      s.buckets.back().buffer.device() == p.device() &&
                      (bucket_elements + p.numel()) * static_cast<int64_t>(itemsize(p.dtype())) <= options.bucket_bytes;
    if (!fits) {
      if (!s.buckets.empty()) s.buckets.back().buffer = zeros({bucket_elements}, s.buckets.back().buffer.options());
      s.buckets.emplace_back();
      s.buckets.back().buffer = Tensor::empty({0}, p.options());  // holds dtype and device until sized
      bucket_elements = 0;
    }
    State::Bucket& bucket = s.buckets.back();
    bucket.members.push_back(i);
    bucket.offsets.push_back(bucket_elements);
    bucket_elements += p.numel();
    s.bucket_of[i] = s.buckets.size() - 1;
  }
  if (!s.buckets.empty()) s.buckets.back().buffer = zeros({bucket_elements}, s.buckets.back().buffer.options());
  for (State::Bucket& bucket : s.buckets) bucket.waiting = bucket.members.size();
  if (!options.overlap) return;
  std::weak_ptr<State> weak = state_;
  for (size_t i = 0; i < s.params.size(); ++i) {
    std::shared_ptr<autograd::Node> node = autograd::gradient_edge(s.params[i]);
    auto* sink = dynamic_cast<autograd::AccumulateGrad*>(node.get());
    HC_CHECK(sink != nullptr, Error, "distributed::GradientAverager: parameter ", i, " ", s.params[i].shape(),
             " is not a leaf");
    sink->add_post_hook([weak, i](const Tensor&) {
      if (std::shared_ptr<State> state = weak.lock()) state->arrive(i);
    });
    s.accumulators.push_back(std::move(node));
  }
}

GradientAverager::~GradientAverager() {
  // Buckets still in flight (a backward that failed before finish()): MPI may still write into their buffers,
  // so they are left allocated; the job is ending anyway.
  if (state_ && state_->in_flight()) new std::shared_ptr<State>(state_);
}

void GradientAverager::finish() {
  if (state_) {
    autograd::NoGradGuard no_grad;
    state_->finish();
  }
}

int64_t GradientAverager::bucket_count() const { return state_ ? static_cast<int64_t>(state_->buckets.size()) : 0; }

void average_gradients(const std::vector<Tensor>& params) {
  GradientAverager(params, {.overlap = false}).finish();
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
