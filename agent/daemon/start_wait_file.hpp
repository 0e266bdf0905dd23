// The cluster's longest tolerance, kept beside the control socket for the agent's next start
// (HostParams::start_wait_ms, docs/convergence.md "Agreement"): a restart with a shorter timing
// than its cluster's, a paused peer serving on until its own watchdog, must wait that out.
// In the unit's runtime directory, kept across restarts and gone at reboot, as a kept
// dataplane is.
#pragma once

#include <cstdint>
#include <string>

namespace nlb {

class StartWaitFile {
  public:
    explicit StartWaitFile(std::string path) : path_(std::move(path)) {}
    // What an earlier run kept: 0 when nothing (or nothing readable) is there.
    std::int64_t read() const;
    // Keeps `ms` if it differs from what this run kept last; the error once per failure
    // streak, empty on success or when nothing needed writing.
    std::string keep(std::int64_t ms);

  private:
    std::string path_;
    std::int64_t kept_ = -1;
    bool failing_ = false;
};

} // namespace nlb
