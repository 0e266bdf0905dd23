#!/usr/bin/env bash
# Fault "twin lossy": a second host with member 2's priority (a cloned VM's configuration)
# starts beside a 3-host cluster while the switch drops 20 % of the heartbeats to every port.
# Hosts 1 and 3 hear two streams under priority 2. Until 2026-12-03, whenever one of host 2's
# frames was lost there, the twin's next frame replaced host 2 in their peer table and echo
# list (the rule that lets a restarted agent's new boot replace its earlier one at once), and
# host 2's next frame replaced it back: "host parameters changed", again and again, and the
# cluster never converged again (the engine's simulator: every host of 4 seeds converging
# after 100 periods). A stream proven a second host, or one that does not serve while the
# live one does, now never replaces the live one before that one is dead.
#   strict (no request lost); the twin refused, saying the priority is taken; hosts 1-3
#   converge at most twice more (the twin starts converging, and until it is refused or proven
#   a second host a lost frame of host 2 may let it in, as a restart would be, and its frame
#   may make a host let go as a member that left it out would) and are converged [1, 2, 3]
#   at the end.
source "$(dirname "$0")/lib.sh"
faults_init twin_lossy
LOSSY_S=8

faults_setup 1 2 3 4
for i in 1 2 3; do fault_config "$i"; start_agent "$i"; done
# Host 4's namespace, configured as host 2 (its own dedicated IP).
fault_config 4 "" "$HEARTBEAT_MS" "$FAULT_RULES" 2
require_converged 1 2 3
stream_start
sleep 1.5

before=$(convergences 1 2 3)
fault_do lossy strict -- nft_fault ether type 0x886f numgen random mod 10 '<' 2
start=$(now)
start_agent 4
fault_agents_started twin "$start" strict -- 4
sleep_until "$(calc "$start + $LOSSY_S")"
echo "heartbeats dropped by the switch: $(nft_dropped)"
echo "host 4: $(query_field 4 '(d["host"]["state"], d["host"].get("reason", ""))')"
fcheck "the twin is refused" test "$(state_of 4)" = refused
fcheck "the twin says its priority is taken" \
  python3 -c 'import sys; sys.exit(0 if "priority" in sys.argv[1] else 1)' \
  "$(query_field 4 'd["host"].get("reason", "")')"
after=$(convergences 1 2 3)
echo "convergences of 1-3: $before -> $after"
# Twice: once for the twin let in as a restart would be (above), once for a release: until
# the twin is told from host 2 restarted, its frame claiming an epoch without a host is, to
# that host, host 2 having counted it gone (docs/convergence.md, "Stalls"), and it lets go.
fcheck "1-3 converged at most twice more" deltas_within "$(deltas "$before" "$after")" 2
for i in 1 2 3; do
  fcheck "host $i converged [1, 2, 3]" test "$(state_of "$i") $(members_of "$i")" = "converged [1, 2, 3]"
done
nft_clear
stream_stop
faults_report
