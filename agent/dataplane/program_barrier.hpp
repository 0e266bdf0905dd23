// Waiting out the dataplane's program runs in flight: a map change that a running program may
// not have seen yet is in force for every packet once this returns.
#pragma once

namespace nlb {

// Returns once every BPF program run that began before the call has ended: they run under
// RCU, and MEMBARRIER_CMD_GLOBAL is synchronize_rcu() (12-18 ms measured here; on one CPU it
// returns at once: a packet's program cannot be running while this process is). Where the
// kernel refuses it (nohz_full), a pause many times longer than any run of the dataplane's
// loop-free programs; returns false then.
bool wait_out_programs();

} // namespace nlb
