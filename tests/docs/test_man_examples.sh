#!/usr/bin/env bash
# Every JSON example of nlb.json(5), as the reader sees it, is a configuration the agent's
# parser accepts; and the parser is really applied (a broken copy of an example is refused).
set -euo pipefail

checker=${1:?usage: test_man_examples.sh NLB_CHECK_CONFIG PAGE}
page=${2:?}
[[ -s $page ]] || { echo "FAIL: $page is missing (build the man_pages target)"; exit 1; }

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# An example starts at a line whose first character is "{" and ends where the braces balance
# (no string in our examples holds a brace).
MANWIDTH=250 MANROFFOPT=-rHY=0 man -l "$page" 2>/dev/null | col -bx | awk -v dir="$dir" '
  depth == 0 && /^ *\{/ { n++; file = dir "/example" n ".json" }
  file != "" {
    print > file
    depth += gsub(/\{/, "{") - gsub(/\}/, "}")
    if (depth == 0) { close(file); file = "" }
  }'

examples=("$dir"/example*.json)
if [[ ! -e ${examples[0]} ]] || ((${#examples[@]} < 2)); then
  echo "FAIL: found ${#examples[@]} JSON example(s) in $page, expected at least 2"
  exit 1
fi
status=0
for f in "${examples[@]}"; do
  if ! error=$("$checker" "$f" 2>&1); then
    echo "FAIL: example of $page refused by the parser: $error"
    sed 's/^/  /' "$f"
    status=1
  fi
done
# The check can fail: the first example with a key the parser does not know.
sed '0,/{/s/{/{ "no_such_key": 1,/' "${examples[0]}" >"$dir/broken.json"
if "$checker" "$dir/broken.json" 2>/dev/null; then
  echo "FAIL: $checker accepted a configuration with an unknown key"
  status=1
fi
((status == 0)) && echo "ok: ${#examples[@]} examples of $page parse"
exit $status
