#!/usr/bin/env bash
# Fault "replay": a bystander on the segment records the cluster's 0x886F frames for 3 s
# (AF_PACKET, tests/tools/nlb_frames.py); host 4's agent is killed (-9) and started again with
# the same config, and the recording is replayed onto the segment for 4 s (payload byte for
# byte; source MAC the bystander's own so the bridge learns no host MAC at its port).
# A frame recorded earlier can never change the state of a restarted host (DESIGN.md §3).
#   host 4 never refuses itself while the old frames arrive and rejoins (4 converged members);
#   zero requests answered twice; every request sent later than (tolerance + 2) periods +
#   slack after the restarted agent answers is answered.
source "$(dirname "$0")/lib.sh"
faults_init replay
faults_setup 1 2 3 4
key=$(fault_key cluster)
for i in 1 2 3 4; do fault_config "$i" "$key"; start_agent "$i"; done
require_converged 1 2 3 4
stream_start
ip netns exec "$TOPO-bystander" python3 "$TOOLS/nlb_frames.py" record --ifname eth0 \
  --out "$TOPO_DIR/recorded.pcap" --duration 3 --count 5000 >"$TOPO_DIR/record.json"
echo "recorded: $(cat "$TOPO_DIR/record.json")"
fextra recorded "$(json 'd["frames"]' <"$TOPO_DIR/record.json")"
fcheck "frames of all 4 hosts recorded" test "$(json 'len(d["senders"])' <"$TOPO_DIR/record.json")" = 4

# Restart host 4's agent and replay the recording from that moment on, for 4 s, 200 frames/s
# (the recording again and again): the restarted agent, which knows no sender's boot nonce
# yet, is the one the old frames could fool (the others have seen those nonces and
# sequences), and it is most exposed from its attach until it serves again; at 200 frames/s
# old frames of every host (its own previous boot's too) reach it all through that time, so
# the outcome does not depend on where a 200 ms heartbeat gap happens to fall.
t=$(now)
{ kill -9 "$AGENT_PID_4" && wait "$AGENT_PID_4"; } 2>/dev/null || true
start_agent 4
ip netns exec "$TOPO-bystander" python3 "$TOOLS/nlb_frames.py" replay --ifname eth0 \
  --file "$TOPO_DIR/recorded.pcap" --src-mac own --rate 200 --loop-for 4 \
  >"$TOPO_DIR/replay.json" &
replayer=$!
fault_agents_started restart_and_replay "$t" -- 4
# Host 4's states while the old frames arrive and 2 s after (polled every 0.1 s, bounded),
# and its log: a refusal between two polls shows there.
states=$(nlbq states 4 15 "$replayer")
wait "$replayer"
refusals=$(count_log 4 '-> refused|"refused: ' "$t")
echo "replayed: $(cat "$TOPO_DIR/replay.json")"
fextra host4_states "\"$states\""
fextra replayed "$(json 'd["sent"]' <"$TOPO_DIR/replay.json")"
fextra host4_refusals "$refusals"
fcheck "host 4 never refused itself during the replay (states: $states; logged refusals: $refusals)" \
  test "${states/refused/}" = "$states" -a "$refusals" = 0
fcheck "host 4 rejoined: 4 converged members within 10 s" wait_converged_as 1,2,3,4 10 1 2 3 4
stream_stop
faults_report
