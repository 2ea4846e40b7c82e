// For a process that must outlive a failed MPI job long enough to say so
// (rank 0 of `dsv3 serve` answers its clients with an error): MPI errors on
// the job's communicator call a hook instead of ending the process at once
// (dist::Comm's default, MPI_ERRORS_ARE_FATAL). The MPI call that failed
// never returns: its thread blocks for good, and the hook's owner must end
// the process (without MPI_Finalize). A no-op without MPI (one rank).
#pragma once

#include <functional>
#include <string>

namespace dsv3::dist {

// `on_failure(message)` runs on the thread whose MPI call failed, once.
void CatchCommFailures(std::function<void(const std::string&)> on_failure);

}  // namespace dsv3::dist
