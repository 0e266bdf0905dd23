#!/usr/bin/env bash
# A built man page renders with man(1), every groff warning on, without a word on stderr: in
# the C and UTF-8 locales and at a normal and a narrow terminal width.
set -euo pipefail

page=${1:?usage: test_man_render.sh PAGE}
[[ -s $page ]] || { echo "FAIL: $page is missing (build the man_pages target)"; exit 1; }

err=$(mktemp)
trap 'rm -f "$err"' EXIT
status=0
for locale in C C.UTF-8; do
  for width in 80 60; do
    if ! LC_ALL=$locale MANWIDTH=$width man --warnings=all -l "$page" >/dev/null 2>"$err"; then
      echo "FAIL: man -l $page exited non-zero (LC_ALL=$locale MANWIDTH=$width)"
      status=1
    fi
    if [[ -s $err ]]; then
      echo "FAIL: man -l $page wrote to stderr (LC_ALL=$locale MANWIDTH=$width):"
      sed 's/^/  /' "$err"
      status=1
    fi
  done
done
# A page that renders to nothing would pass the checks above.
lines=$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
if ((lines < 20)); then
  echo "FAIL: $page renders to $lines lines"
  status=1
fi
((status == 0)) && echo "ok: $page renders without warnings"
exit $status
