#!/usr/bin/env bash
# The bash completion of nlbadm, sourced into this shell and called as bash calls it: commands,
# global and per-command options (taken from nlbadm's own --help), interface names, modes,
# file names, and the --option=value form.
set -uo pipefail

completion=${1:?usage: test_bash_completion.sh COMPLETION_FILE NLBADM}
nlbadm=${2:?}

# shellcheck source=/dev/null
source "$completion"
function=$(complete -p nlbadm 2>/dev/null | grep -oE -- '-F [^ ]+' | cut -d' ' -f2)
[[ -n $function ]] || { echo "FAIL: $completion registers no completion function for nlbadm"; exit 1; }

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# The candidates for the command line "$@" (the last word is the one being completed), sorted,
# one per line. COMP_WORDS is split as bash splits it: "=" is a word of its own.
candidates() {
  COMP_WORDS=(nlbadm "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="${COMP_WORDS[*]}"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  "$function" nlbadm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  ((${#COMPREPLY[@]} == 0)) || printf '%s\n' "${COMPREPLY[@]}" | sort -u
}
oneline() { tr '\n' ' ' <<<"$1" | sed 's/ $//'; }
sorted() { tr ' ' '\n' <<<"$*" | grep -v '^$' | sort -u; }
expect_exactly() { # WHAT EXPECTED ARGS...
  local what=$1 expected got
  expected=$(sorted "$2")
  shift 2
  got=$(candidates "$@")
  [[ $got == "$expected" ]] || fail "$what: nlbadm $*<TAB> gave [$(oneline "$got")], expected [$(oneline "$expected")]"
}
expect_including() { # WHAT WANTED ARGS...
  local what=$1 wanted got w
  wanted=$2
  shift 2
  got=$(candidates "$@")
  for w in $wanted; do
    grep -qxF -- "$w" <<<"$got" || fail "$what: nlbadm $*<TAB> gave [$(oneline "$got")], missing $w"
  done
}
expect_excluding() { # WHAT UNWANTED ARGS...
  local what=$1 unwanted got w
  unwanted=$2
  shift 2
  got=$(candidates "$@")
  for w in $unwanted; do
    ! grep -qxF -- "$w" <<<"$got" || fail "$what: nlbadm $*<TAB> offered $w"
  done
}

help=$("$nlbadm" --help)
commands=$(awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }' \
  <<<"$help")
aliases=$(grep -oE '\(alias: [a-z0-9]+\)' <<<"$help" | sed 's/(alias: \(.*\))/\1/' || true)
global_options=$(awk '/^Options:/ { on = 1; next } /^$/ { on = 0 } on' <<<"$help" |
  grep -oE '^ +--[a-z][a-z0-9-]*' | tr -d ' ')
(($(wc -w <<<"$commands") >= 10)) || fail "found only [$commands] in nlbadm --help"
(($(wc -w <<<"$global_options") >= 4)) || fail "found only [$global_options] in nlbadm --help"

# Commands: all of them on an empty line, the matching ones after a prefix, also after options.
expect_exactly "commands" "$commands $aliases" ""
expect_exactly "commands by prefix" "$(sorted "$commands $aliases" | grep '^st')" st
expect_exactly "commands after --socket PATH" "$(sorted "$commands $aliases" | grep '^d')" \
  --socket /run/nlb/nlb.sock d
expect_exactly "commands after --socket=PATH" "$(sorted "$commands $aliases" | grep '^d')" \
  --socket = /run/nlb/nlb.sock d
expect_exactly "nothing after a command that takes no argument" "" query ""

# Options: the global ones everywhere (nlbadm accepts them before and after the command, and
# remote control's are documented though this nlbadm may not have them yet), each command's
# own as its --help says.
remote_options="--cluster --key-file --host --timeout"
expect_including "global options" "$global_options $remote_options" --
expect_excluding "per-command options before a command" "--vip --mode" --
for c in $commands; do
  own=$("$nlbadm" "$c" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u)
  expect_including "options of $c" "$own --help" "$c" --
done
expect_including "--vip after a port" "--vip" enable 80 --
expect_excluding "--vip of a command without rules" "--vip --mode" query --

# Arguments.
interfaces=$(ls /sys/class/net)
expect_exactly "interfaces for attach" "$interfaces" attach ""
expect_exactly "interfaces for detach by prefix" "$(grep '^l' <<<"$interfaces")" detach l
expect_exactly "nothing after the interface" "" attach lo ""
expect_exactly "port rule: all" "all" disable ""
expect_exactly "port rule after --vip" "all" drain --vip 192.0.2.101 a
expect_exactly "nothing after the port" "" enable 80 ""
expect_exactly "nothing for a VIP" "" enable 80 --vip ""
expect_exactly "ip2mac modes" "unicast multicast igmp" ip2mac 192.0.2.100 --mode ""
expect_exactly "ip2mac mode by prefix, --mode=" "multicast" ip2mac 192.0.2.100 --mode = m

# File names for --socket and --key-file, relative and absolute.
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
touch "$dir/nlb.sock" "$dir/cluster.key" "$dir/other"
expect_exactly "files for --key-file" "$dir/cluster.key" --key-file "$dir/c"
expect_exactly "files for --socket=" "$dir/nlb.sock" query --socket = "$dir/n"
cd "$dir" || exit 1
expect_exactly "files for --socket, relative" "cluster.key nlb.sock other" --socket ""
expect_exactly "files right after --socket=" "cluster.key nlb.sock other" --socket =
cd - >/dev/null || exit 1

if ((failures > 0)); then
  echo "$failures completion check(s) failed"
  exit 1
fi
echo "ok: nlbadm completion"
