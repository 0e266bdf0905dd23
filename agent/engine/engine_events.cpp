// Names of the engine's events, as the log and the tests print them.
#include "convergence_engine.hpp"

namespace nlb {

const char* to_string(EventKind kind) {
    switch (kind) {
    case EventKind::state_changed:
        return "state_changed";
    case EventKind::host_joined:
        return "host_joined";
    case EventKind::host_left:
        return "host_left";
    case EventKind::host_changed:
        return "host_changed";
    case EventKind::convergence_started:
        return "convergence_started";
    case EventKind::converged:
        return "converged";
    case EventKind::host_refused:
        return "host_refused";
    case EventKind::refused:
        return "refused";
    case EventKind::partition_detected:
        return "partition_detected";
    case EventKind::partition_yield:
        return "partition_yield";
    case EventKind::unauthenticated:
        return "unauthenticated";
    case EventKind::duplicate_priority:
        return "duplicate_priority";
    case EventKind::drain_complete:
        return "drain_complete";
    case EventKind::command_rejected:
        return "command_rejected";
    case EventKind::map_received:
        return "map_received";
    case EventKind::map_fallback:
        return "map_fallback";
    case EventKind::stalled:
        return "stalled";
    case EventKind::unreadable:
        return "unreadable";
    case EventKind::panic_started:
        return "panic_started";
    case EventKind::panic_ended:
        return "panic_ended";
    case EventKind::seed_inherited:
        return "seed_inherited";
    case EventKind::config_switched:
        return "config_switched";
    case EventKind::link_down:
        return "link_down";
    case EventKind::link_up:
        return "link_up";
    case EventKind::frame_budget:
        return "frame_budget";
    case EventKind::frame_oversized:
        return "frame_oversized";
    }
    return "unknown";
}

} // namespace nlb
