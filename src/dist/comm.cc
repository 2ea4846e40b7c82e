// The process group over MPI; see comm.h. Element sizes become contiguous
// MPI datatypes so counts stay in elements (rows), not bytes.
#include "dist/comm.h"

// MPI's C API only: the deprecated C++ bindings are not wanted (or linked).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace dsv3::dist {

namespace {

// Started by mpirun (Open MPI), or by another PMI/PMIx launcher?
bool LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (const char* v = std::getenv(name); v && *v) return true;
  return false;
}

// One element of `bytes` bytes, committed; freed by the caller.
MPI_Datatype ElementType(int64_t bytes) {
  MPI_Datatype t;
  MPI_Type_contiguous(static_cast<int>(bytes), MPI_BYTE, &t);
  MPI_Type_commit(&t);
  return t;
}

// counts -> int counts and displacements (prefix sums), both in elements.
void ToInt(const int64_t* counts, int n, std::vector<int>& out, std::vector<int>& displs, Comm& comm) {
  out.resize(n), displs.resize(n);
  int64_t at = 0;
  for (int r = 0; r < n; ++r) {
    if (counts[r] < 0 || counts[r] > INT_MAX || at > INT_MAX)
      comm.Abort("an exchange of " + std::to_string(counts[r]) + " elements at offset " + std::to_string(at) +
                 " exceeds MPI's int counts (use a smaller batch or chunk)");
    out[r] = static_cast<int>(counts[r]);
    displs[r] = static_cast<int>(at);
    at += counts[r];
  }
}

}  // namespace

// The count arrays and the datatype live until the exchange completes.
struct Comm::Pending {
  std::vector<int> send_counts, send_displs, recv_counts, recv_displs;
  MPI_Datatype type = MPI_DATATYPE_NULL;
  MPI_Request request = MPI_REQUEST_NULL;
  bool done = false;  // completed by Progress
};

Expected<std::unique_ptr<Comm>> Comm::Init(int* argc, char*** argv) {
  if (!LaunchedByMpi()) return Single();
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return Status::Error("MPI_Init_thread failed (is this process started by a matching mpirun?)");
  std::unique_ptr<Comm> c(new Comm());
  c->mpi_ = true;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size_);
  if (provided < MPI_THREAD_FUNNELED) {
    c->Abort("the MPI library does not provide MPI_THREAD_FUNNELED (dsv3 runs OpenMP threads beside MPI)");
  }
  return c;
}

std::unique_ptr<Comm> Comm::Single() { return std::unique_ptr<Comm>(new Comm()); }

Comm::~Comm() {
  if (mpi_) MPI_Finalize();
}

void Comm::AllToAllV(const void* send, const int64_t* send_counts, void* recv, const int64_t* recv_counts,
                     int64_t elem_bytes) {
  if (!mpi_) {
    std::memcpy(recv, send, static_cast<size_t>(send_counts[0] * elem_bytes));
    return;
  }
  ToInt(send_counts, size_, counts_, displs_, *this);
  ToInt(recv_counts, size_, counts2_, displs2_, *this);
  MPI_Datatype t = ElementType(elem_bytes);
  MPI_Alltoallv(send, counts_.data(), displs_.data(), t, recv, counts2_.data(), displs2_.data(), t, MPI_COMM_WORLD);
  MPI_Type_free(&t);
}

void Comm::AllToAll(const int64_t* send, int64_t per_rank, int64_t* recv) {
  if (!mpi_) {
    std::memcpy(recv, send, static_cast<size_t>(per_rank) * sizeof(int64_t));
    return;
  }
  MPI_Alltoall(send, static_cast<int>(per_rank), MPI_INT64_T, recv, static_cast<int>(per_rank), MPI_INT64_T,
               MPI_COMM_WORLD);
}

void Comm::AllGatherV(void* rows, const int64_t* counts, int64_t elem_bytes) {
  if (!mpi_) return;
  ToInt(counts, size_, counts_, displs_, *this);
  MPI_Datatype t = ElementType(elem_bytes);
  MPI_Allgatherv(MPI_IN_PLACE, 0, t, rows, counts_.data(), displs_.data(), t, MPI_COMM_WORLD);
  MPI_Type_free(&t);
}

std::vector<uint64_t> Comm::AllGather(uint64_t value) {
  std::vector<uint64_t> all(size_, value);
  if (mpi_) MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD);
  return all;
}

void Comm::Broadcast(void* data, int64_t bytes, int root) {
  if (!mpi_ || bytes == 0) return;
  const int64_t one[1] = {bytes};
  ToInt(one, 1, counts_, displs_, *this);  // checks the size fits an int
  MPI_Bcast(data, counts_[0], MPI_BYTE, root, MPI_COMM_WORLD);
}

void Comm::BroadcastPatiently(void* data, int64_t bytes, int root) {
  if (!mpi_ || bytes == 0) return;
  const int64_t one[1] = {bytes};
  ToInt(one, 1, counts_, displs_, *this);
  MPI_Request request;
  MPI_Ibcast(data, counts_[0], MPI_BYTE, root, MPI_COMM_WORLD, &request);
  // ~200 us of polling keeps a busy job's latency; then sleeps that grow to
  // 1 ms (what an idle wait costs at most in latency).
  const auto start = std::chrono::steady_clock::now();
  int done = 0;
  long sleep_us = 20;
  for (;;) {
    MPI_Test(&request, &done, MPI_STATUS_IGNORE);
    if (done) return;
    if (std::chrono::steady_clock::now() - start < std::chrono::microseconds(200)) continue;
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    sleep_us = std::min<long>(sleep_us * 2, 1000);
  }
}

// Reduce-scatter then all-gather, by hand so the order of additions is
// fixed: rank r sums slice r of every rank's data, rank 0's first.
void Comm::AllReduceSum(float* data, int64_t n) {
  if (!mpi_ || size_ == 1) return;
  std::vector<int64_t> slice(size_), send(size_), recv(size_);
  for (int r = 0; r < size_; ++r) slice[r] = n * (r + 1) / size_ - n * r / size_;
  const int64_t mine = slice[rank_];
  for (int r = 0; r < size_; ++r) send[r] = slice[r], recv[r] = mine;
  reduce_recv_.resize(static_cast<size_t>(mine * size_));
  AllToAllV(data, send.data(), reduce_recv_.data(), recv.data(), sizeof(float));
  float* out = data + n * rank_ / size_;  // [mine]: this rank's slice, summed in rank order
  for (int64_t i = 0; i < mine; ++i) {
    float s = reduce_recv_[i];
    for (int r = 1; r < size_; ++r) s += reduce_recv_[r * mine + i];
    out[i] = s;
  }
  AllGatherV(data, slice.data(), sizeof(float));
}

int64_t Comm::AllReduceMax(int64_t value) {
  int64_t out = value;
  if (mpi_) MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  return out;
}

void Comm::AllReduceSum(int64_t* data, int64_t n) {
  if (!mpi_ || size_ == 1 || n == 0) return;
  const int64_t one[1] = {n};
  ToInt(one, 1, counts_, displs_, *this);
  MPI_Allreduce(MPI_IN_PLACE, data, counts_[0], MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
}

void Comm::GatherV(const void* mine, void* rows, const int64_t* counts, int64_t elem_bytes, int root) {
  if (!mpi_) {
    if (rows != mine && counts[0] > 0) std::memmove(rows, mine, static_cast<size_t>(counts[0] * elem_bytes));
    return;
  }
  ToInt(counts, size_, counts_, displs_, *this);
  MPI_Datatype t = ElementType(elem_bytes);
  if (rank_ == root)
    MPI_Gatherv(MPI_IN_PLACE, 0, t, rows, counts_.data(), displs_.data(), t, root, MPI_COMM_WORLD);
  else
    MPI_Gatherv(mine, counts_[rank_], t, nullptr, nullptr, nullptr, t, root, MPI_COMM_WORLD);
  MPI_Type_free(&t);
}

int Comm::IAllToAllV(const void* send, const int64_t* send_counts, void* recv, const int64_t* recv_counts,
                     int64_t elem_bytes) {
  auto p = std::make_unique<Pending>();
  if (!mpi_) {
    if (send_counts[0] > 0) std::memcpy(recv, send, static_cast<size_t>(send_counts[0] * elem_bytes));
  } else {
    ToInt(send_counts, size_, p->send_counts, p->send_displs, *this);
    ToInt(recv_counts, size_, p->recv_counts, p->recv_displs, *this);
    p->type = ElementType(elem_bytes);
    MPI_Ialltoallv(send, p->send_counts.data(), p->send_displs.data(), p->type, recv, p->recv_counts.data(),
                   p->recv_displs.data(), p->type, MPI_COMM_WORLD, &p->request);
  }
  pending_.push_back(std::move(p));
  return static_cast<int>(pending_.size()) - 1;
}

void Comm::Wait(int handle) {
  if (handle < 0 || handle >= static_cast<int>(pending_.size()) || !pending_[handle])
    Abort("Comm::Wait: no pending exchange " + std::to_string(handle));
  Pending& p = *pending_[handle];
  if (mpi_) {
    if (!p.done) MPI_Wait(&p.request, MPI_STATUS_IGNORE);
    MPI_Type_free(&p.type);
  }
  pending_[handle].reset();
  // Every handle waited on: start numbering again (handles stay small).
  bool any = false;
  for (const auto& q : pending_) any = any || q != nullptr;
  if (!any) pending_.clear();
}

void Comm::Progress() {
  if (!mpi_) return;
  for (auto& p : pending_) {
    if (!p || p->done) continue;
    int flag = 0;
    MPI_Test(&p->request, &flag, MPI_STATUS_IGNORE);
    p->done = flag != 0;
  }
}

void Comm::Barrier() {
  if (mpi_) MPI_Barrier(MPI_COMM_WORLD);
}

Status Comm::Agree(const Status& local) {
  if (!mpi_ || size_ == 1) return local;
  // The lowest failing rank speaks: max over (size - rank) of the failed ones.
  const int64_t key = local.ok() ? 0 : size_ - rank_;
  const int64_t best = AllReduceMax(key);
  if (best == 0) return Status::Ok();
  const int root = static_cast<int>(size_ - best);
  std::string message = rank_ == root ? local.message() : std::string();
  int64_t length = static_cast<int64_t>(message.size());
  Broadcast(&length, sizeof(length), root);
  message.resize(static_cast<size_t>(length));
  Broadcast(message.data(), length, root);
  return Status::Error("rank " + std::to_string(root) + ": " + message);
}

void Comm::Abort(const std::string& message, int code) {
  if (!mpi_) {
    std::fprintf(stderr, "dsv3: error: %s\n", message.c_str());
    std::exit(code);
  }
  std::fprintf(stderr, "dsv3: error: rank %d: %s\n", rank_, message.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();  // MPI_Abort does not return
}

}  // namespace dsv3::dist
