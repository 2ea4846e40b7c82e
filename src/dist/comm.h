// The process group: rank, size and the few collectives dsv3 uses across
// processes (all-to-all-v of rows, all-gather-v, broadcast, an all-reduce
// that sums in a fixed rank order, barrier), over MPI when the process was
// started by mpirun and as a one-rank group otherwise (MPI is then never
// initialised, so a plain `dsv3 run` is unchanged). Failures: Agree() turns
// a status some ranks hold into the same error on every rank (so all exit
// non-zero with one message), Abort() ends the whole job from one rank, and
// any MPI error, or a rank dying, ends every rank (MPI_ERRORS_ARE_FATAL,
// mpirun kills the rest): nothing waits forever on a dead peer. Only the
// thread that created the group may call it (MPI_THREAD_FUNNELED).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"

namespace dsv3::dist {

class Comm {
 public:
  // Joins the job mpirun started (reads Open MPI's / PMIx's environment), or
  // returns a one-rank group when there is none. Call once per process.
  static Expected<std::unique_ptr<Comm>> Init(int* argc, char*** argv);
  // A one-rank group without MPI (tests, library users).
  static std::unique_ptr<Comm> Single();
  ~Comm();  // MPI_Finalize when MPI was initialised
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool distributed() const { return size_ > 1; }

  // All-to-all with variable counts of fixed-size elements: send_counts[r]
  // elements go to rank r (contiguous, in rank order); recv_counts[r] come
  // from rank r. With one rank: a copy.
  void AllToAllV(const void* send, const int64_t* send_counts, void* recv, const int64_t* recv_counts,
                 int64_t elem_bytes);
  // send [size, per_rank] -> recv [size, per_rank]: block r goes to rank r.
  void AllToAll(const int64_t* send, int64_t per_rank, int64_t* recv);
  // rows [sum counts, elem] in rank order; this rank's block (counts[rank]
  // elements at its offset) is sent to every rank and the others filled in.
  void AllGatherV(void* rows, const int64_t* counts, int64_t elem_bytes);
  // Each rank's `value` -> values [size] on every rank.
  std::vector<uint64_t> AllGather(uint64_t value);
  void Broadcast(void* data, int64_t bytes, int root);
  // A broadcast that may wait a long time for the root (a server's next
  // step): the other ranks poll the non-blocking broadcast, busily for a
  // short while, then sleeping up to 1 ms between polls, so an idle job
  // does not hold its cores (a blocking MPI_Bcast spins). Every rank of one
  // such broadcast must use this call (it does not match Broadcast).
  void BroadcastPatiently(void* data, int64_t bytes, int root);
  // data [n] = the sum over ranks, added in rank order 0, 1, ... on every
  // rank for every element: bit-identical on all ranks and from run to run.
  void AllReduceSum(float* data, int64_t n);
  int64_t AllReduceMax(int64_t value);
  // data [n] = the elementwise sum over ranks (integers: exact in any order).
  void AllReduceSum(int64_t* data, int64_t n);
  // Every rank's `mine` (counts[rank] elements) -> rows [sum counts, elem] in
  // rank order on `root` only (rows may be null elsewhere; on root, `mine`
  // is read from its place in rows).
  void GatherV(const void* mine, void* rows, const int64_t* counts, int64_t elem_bytes, int root);
  void Barrier();

  // Non-blocking all-to-all-v (same layout as AllToAllV): posts the exchange
  // and returns at once; the buffers must stay untouched until Wait(handle).
  // Wait completes one exchange; handles may be waited on in any order.
  // Callers that need a fixed order of additions (the trainer's bucketed
  // gradient reduction) add the received blocks themselves, in rank order,
  // so timing never changes a result.
  int IAllToAllV(const void* send, const int64_t* send_counts, void* recv, const int64_t* recv_counts,
                 int64_t elem_bytes);
  void Wait(int handle);
  // Lets posted exchanges advance (Open MPI moves non-blocking collectives
  // only inside MPI calls); returns at once.
  void Progress();

  // Every rank calls this with its own status: if any failed, every rank
  // returns the error of the lowest failing rank, prefixed "rank R: " when
  // the group has several ranks; else Ok.
  Status Agree(const Status& local);
  // Prints "dsv3: error: rank R: message" and ends every rank of the job
  // with exit status `code` (MPI_Abort); exits the process without MPI.
  [[noreturn]] void Abort(const std::string& message, int code = 1);

 private:
  Comm() = default;
  int rank_ = 0, size_ = 1;
  bool mpi_ = false;
  std::vector<int> counts_, displs_, counts2_, displs2_;  // int arrays MPI wants
  std::vector<float> reduce_recv_;                        // AllReduceSum scratch
  struct Pending;                                          // one posted IAllToAllV
  std::vector<std::unique_ptr<Pending>> pending_;          // by handle; null once waited on
};

}  // namespace dsv3::dist
