// Panic mode (docs/health.md): a health probe drains its rule on one host, but when too few
// members of a rule are healthy the cluster serves the rule as if every member were, so that
// a broken probe (or a dependency every probe checks) never takes a whole service down. A
// pure function of the members' parameters, which every member reads from the same
// heartbeats and which the view digest covers: every host decides panic identically.
#pragma once

#include <cstdint>
#include <span>

#include "allocation.hpp"
#include "rules.hpp"

namespace nlb {

// For each port rule (`modes[r]`, not `disabled`): the candidates are the members whose
// operator lets them serve it (control enabled, or drained by a probe only) and that could own
// buckets of it (any member of a `single` rule, weight > 0 in a `multiple` one); the healthy
// ones are the candidates no probe holds down. The rule is in panic when some candidate is
// held down by a probe and no candidate is healthy, or fewer than `panic_percent` % are (the
// largest panic_percent any member publishes). In panic the members a probe holds down get
// `enabled` back. Nothing happens unless every member publishes health (a version without
// probes treats a probe's drain as a drain, so the whole cluster must). Returns the rules in
// panic, bit r = port rule r.
std::uint32_t resolve_panic(std::span<MemberParams> members, std::span<const RuleMode> modes);

} // namespace nlb
