#!/usr/bin/env bash
# The man pages document everything the programs say they have, taken mechanically from the
# programs and docs/config.md, so that an option, command, exit code or key added without its
# documentation fails here:
#   nlbadm.8     every command and alias of `nlbadm --help`, every option of it and of each
#                `nlbadm COMMAND --help`, every exit code;
#   nlb-agent.8  every option, default path and exit status of `nlb-agent --help`;
#   nlb.json.5   every key of docs/config.md.
set -euo pipefail
set -f # config keys such as port_rules[i].vip are not globs

nlbadm=${1:?usage: test_man_complete.sh NLBADM NLB_AGENT MAN_DIR CONFIG_MD}
agent=${2:?}
man_dir=${3:?}
config_md=${4:?}

failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# The page as a reader sees it: plain text, wide and without hyphenation, so that no word is
# split.
rendered() {
  [[ -s $1 ]] || { echo "FAIL: $1 is missing (build the man_pages target)" >&2; exit 1; }
  MANWIDTH=250 MANROFFOPT=-rHY=0 man -l "$1" 2>/dev/null | col -bx
}
# One section of a rendered page: from its heading to the next heading.
section_of() { awk -v s="$2" '/^[A-Z]/ { on = ($0 == s) } on' <<<"$1"; }
# A term of a definition list: an indented line that starts with it.
has_term() { grep -qE "^ +$(escape "$2")( |,|\$)" <<<"$1"; }
has_word() { grep -qE "(^|[^a-z0-9_-])$(escape "$2")(\$|[^a-z0-9_-])" <<<"$1"; }
# shellcheck disable=SC2001,SC2016 # one bracket expression of characters, $ among them
escape() { sed 's/[][\.|$(){}?+*^]/\\&/g' <<<"$1"; }
# At least this many items were found: a changed help layout must not make a check vacuous.
expect_at_least() {
  local what=$1 min=$2 count
  count=$(wc -w <<<"$3")
  ((count >= min)) || fail "found only $count $what (at least $min expected): extraction broken?"
}

adm_page=$(rendered "$man_dir/nlbadm.8.gz")
agent_page=$(rendered "$man_dir/nlb-agent.8.gz")
json_page=$(rendered "$man_dir/nlb.json.5.gz")

# nlbadm: commands (with their aliases), options, exit codes.
adm_help=$("$nlbadm" --help)
commands=$(awk '/^Commands:/ { on = 1; next } /^$/ { on = 0 } on && /^  [a-z]/ { print $1 }' \
  <<<"$adm_help")
aliases=$(grep -oE '\(alias: [a-z0-9]+\)' <<<"$adm_help" | sed 's/(alias: \(.*\))/\1/' || true)
expect_at_least "nlbadm commands" 10 "$commands"
adm_commands_section=$(section_of "$adm_page" "COMMANDS")
for c in $commands $aliases; do
  has_term "$adm_commands_section" "$c" || fail "nlbadm.8: command $c is not documented under COMMANDS"
done

global_options=$(awk '/^Options:/ { on = 1; next } /^$/ { on = 0 } on' <<<"$adm_help" |
  grep -oE '^ +--[a-z][a-z0-9-]*' | tr -d ' ')
expect_at_least "nlbadm options" 4 "$global_options"
adm_options_section=$(section_of "$adm_page" "OPTIONS")
for o in $global_options; do
  has_term "$adm_options_section" "$o" || fail "nlbadm.8: option $o is not documented under OPTIONS"
done
all_options=$(
  {
    echo "$adm_help"
    for c in $commands; do "$nlbadm" "$c" --help; done
  } | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
)
for o in $all_options; do
  has_word "$adm_page" "$o" || fail "nlbadm.8: option $o (of some nlbadm COMMAND --help) is not documented"
done

adm_codes=$(awk '/^Exit codes:/ { on = 1; next } /^$/ { on = 0 } on' <<<"$adm_help" |
  grep -oE '^  [0-9]+ ' | tr -d ' ')
expect_at_least "nlbadm exit codes" 3 "$adm_codes"
adm_exit_section=$(section_of "$adm_page" "EXIT STATUS")
for code in $adm_codes; do
  has_term "$adm_exit_section" "$code" || fail "nlbadm.8: exit code $code is not under EXIT STATUS"
done

# nlb-agent: options, default paths, exit statuses.
agent_help=$("$agent" --help)
agent_options=$(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$agent_help" | sort -u)
expect_at_least "nlb-agent options" 6 "$agent_options"
agent_options_section=$(section_of "$agent_page" "OPTIONS")
for o in $agent_options; do
  has_term "$agent_options_section" "$o" || fail "nlb-agent.8: option $o is not documented under OPTIONS"
done
agent_paths=$(tr '\n' ' ' <<<"$agent_help" | grep -oE '\(default +/[^ )]+' | awk '{ print $2 }')
expect_at_least "nlb-agent default paths" 3 "$agent_paths"
agent_files_section=$(section_of "$agent_page" "FILES")
for p in $agent_paths; do
  has_term "$agent_files_section" "$p" || fail "nlb-agent.8: default path $p is not under FILES"
done
agent_codes=$(sed -n '/^Exit status:/,$p' <<<"$agent_help" | grep -oE '(^|[ ,:])[0-9]+ ' |
  grep -oE '[0-9]+' | sort -u)
expect_at_least "nlb-agent exit statuses" 3 "$agent_codes"
agent_exit_section=$(section_of "$agent_page" "EXIT STATUS")
for code in $agent_codes; do
  has_term "$agent_exit_section" "$code" || fail "nlb-agent.8: exit status $code is not under EXIT STATUS"
done

# nlb.json: every key of the table in docs/config.md.
# shellcheck disable=SC2016 # the backquotes are Markdown's
keys=$(awk '/^## Keys/ { on = 1; next } /^## / { on = 0 } on' "$config_md" |
  grep -oE '^\| `[^`]+` \|' | sed 's/^| `\(.*\)` |$/\1/')
expect_at_least "config keys" 20 "$keys"
json_keys_section=$(section_of "$json_page" "KEYS")
for k in $keys; do
  has_term "$json_keys_section" "$k" || fail "nlb.json.5: key $k is not documented under KEYS"
done

if ((failures > 0)); then
  echo "$failures thing(s) undocumented"
  exit 1
fi
echo "ok: $(wc -w <<<"$commands $aliases") commands, $(wc -w <<<"$all_options") nlbadm options," \
  "$(wc -w <<<"$agent_options") nlb-agent options, $(wc -w <<<"$keys") config keys documented"
