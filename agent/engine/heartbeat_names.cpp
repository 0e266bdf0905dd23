// Names of heartbeat states, refusal reasons and decode errors, as logs, query and stats
// print them.
#include "heartbeat_codec.hpp"

namespace nlb {

const char* to_string(HostState state) {
    switch (state) {
    case HostState::stopped:
        return "stopped";
    case HostState::converging:
        return "converging";
    case HostState::converged:
        return "converged";
    case HostState::draining:
        return "draining";
    case HostState::suspended:
        return "suspended";
    case HostState::refused:
        return "refused";
    }
    return "unknown";
}

const char* to_string(RefuseReason reason) {
    switch (reason) {
    case RefuseReason::none:
        return "none";
    case RefuseReason::rules_differ:
        return "configuration (port rules, VIPs, mode or timing) differs from the cluster's";
    case RefuseReason::priority_taken:
        return "host priority already taken";
    case RefuseReason::key_mismatch:
        return "key_mismatch";
    case RefuseReason::version:
        return "version";
    case RefuseReason::no_contact:
        return "no two-way contact with the cluster";
    case RefuseReason::map_minority:
        return "map digest in the minority";
    }
    return "unknown";
}

const char* to_string(DecodeError error) {
    switch (error) {
    case DecodeError::none:
        return "none";
    case DecodeError::truncated:
        return "truncated";
    case DecodeError::bad_magic:
        return "not a heartbeat";
    case DecodeError::bad_version:
        return "unsupported version";
    case DecodeError::bad_length:
        return "bad length";
    case DecodeError::bad_field:
        return "bad field";
    }
    return "unknown";
}

} // namespace nlb
