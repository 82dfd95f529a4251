#!/usr/bin/env bash
# mypy over the package as it is installed: baton/ with workflows/ and activities/
# mapped in as baton.workflows and baton.activities (pyproject's package-dir).
# mypy cannot follow the editable install's import hook, so it checks a temporary
# tree of links shaped like the installed package; paths are printed as in the repo.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TREE="$(mktemp -d)"
trap 'rm -rf "$TREE"' EXIT
mkdir "$TREE/baton"
for entry in "$ROOT"/baton/*; do
  case "$(basename "$entry")" in __pycache__) ;; *) ln -s "$entry" "$TREE/baton/" ;; esac
done
ln -s "$ROOT/workflows" "$TREE/baton/workflows"
ln -s "$ROOT/activities" "$TREE/baton/activities"
ln -s "$ROOT/worker.py" "$ROOT/starter.py" "$TREE/"
cd "$TREE"
status=0
"$ROOT/.venv/bin/mypy" --config-file "$ROOT/pyproject.toml" --cache-dir "$ROOT/.mypy_cache" \
  baton worker.py starter.py "$@" >"$TREE/out" 2>&1 || status=$?
sed -e 's#^baton/workflows/#workflows/#' -e 's#^baton/activities/#activities/#' "$TREE/out"
exit $status
