// A probe's verdict from its checks, keepalived's and HAProxy's rise/fall: `rise` consecutive
// passes turn a down probe up, `fall` consecutive failures turn an up probe down, anything in
// between keeps the verdict. A probe starts down, so a rule it guards gets no share before its
// service has answered `rise` times. Pure: the tests drive it without sockets or clock.
#pragma once

#include <cstdint>

namespace nlb {

class ProbeVerdict {
  public:
    ProbeVerdict(std::uint32_t rise, std::uint32_t fall);

    // One check's result; true when it changed the verdict.
    bool record(bool passed);
    bool up() const { return up_; }
    // Consecutive results so far against the current verdict (passes while down, failures
    // while up): how close the probe is to changing it.
    std::uint32_t streak() const { return streak_; }

  private:
    std::uint32_t rise_, fall_;
    bool up_ = false;
    std::uint32_t streak_ = 0;
};

} // namespace nlb
