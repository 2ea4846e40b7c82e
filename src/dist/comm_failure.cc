// The MPI error handler of comm_failure.h, on top of MPI's C API (comm.cc,
// which owns the process group, keeps its fatal default for everything else).
#include "dist/comm_failure.h"

#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <unistd.h>

#include <atomic>

namespace dsv3::dist {

namespace {

std::function<void(const std::string&)>& Hook() {
  static std::function<void(const std::string&)> hook;
  return hook;
}

void OnError(MPI_Comm*, int* code, ...) {
  static std::atomic<bool> reported{false};
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(*code, text, &len);
  if (!reported.exchange(true) && Hook()) Hook()(std::string("MPI error: ") + std::string(text, len));
  for (;;) pause();  // the failed exchange cannot go on; the hook's owner ends the process
}

}  // namespace

void CatchCommFailures(std::function<void(const std::string&)> on_failure) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) return;
  Hook() = std::move(on_failure);
  MPI_Errhandler handler;
  MPI_Comm_create_errhandler(&OnError, &handler);
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, handler);
  MPI_Errhandler_free(&handler);
}

}  // namespace dsv3::dist
