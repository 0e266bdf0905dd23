// The part of a configuration every host must share and `nlbadm push` carries to every host
// (docs/staged-config.md, "Pushing"): the VIPs beside the cluster IP, the port rules' shape
// and the heartbeat timing. One flat JSON object, small enough for one remote-control
// datagram with 32 rules (many IPv6 VIPs beside many rules may not fit: nlbadm says so):
//
//   {"heartbeat_ms": 1000, "heartbeat_tolerance": 5, "cleanup_delay_s": 300,
//    "vips": "10.0.0.2,fd00::2", "rules": "*:80-80:t:m:s 1:53-53:u:s:n"}
//
// A rule is VIP:FIRST-LAST:PROTOCOL:MODE:AFFINITY, VIP "*" for all or the index in the VIP
// list (0 the cluster IP, 1 the first of "vips"), protocol t/u/b, mode m/s/d, affinity n/s/c
// (none, single, network).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "config.hpp"

namespace nlb {

// The shared part of `config`, as a push request's fields (without "command").
nlohmann::json shared_part(const Config& config);

// `host` with the shared part `part` in place of its own: the timing and the rules' shape
// from `part`, each rule's host-local values (load_weight, handling_priority, enabled,
// load_feedback) from the host's rule with the same VIP, ports and protocol, else from its
// first rule of that VIP and protocol whose ports overlap (load_feedback only from the
// same ports), else the defaults; the host's cluster IP stays. Throws ConfigError with one
// line naming what does not fit ("push: rules[2]: bad protocol \"x\"", "push: vips:
// \"10.0.0\" is not an address").
Config with_shared(const Config& host, const nlohmann::json& part);

} // namespace nlb
