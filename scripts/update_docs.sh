#!/usr/bin/env bash
# @brief Regenerates docs/config.md from the key table the parser uses (`mst config --keys`).
set -euo pipefail
cd "$(dirname "$0")/.."
MST=${MST:-build/bin/mst}
{
  cat <<'HEAD'
# Configuration keys

Every experiment is a JSON object whose keys are listed below, nested (`{"masking": {"p": 0.1}}`)
or dotted (`{"masking.p": 0.1}`); on the command line, `--set masking.p=0.1` overrides a file.
`model.preset` fills every `model.*` key first; explicit `model.*` keys then override it. Keys
starting with `_` (such as `_comment`) are ignored. An unknown key, a value of the wrong type or out
of range stops with one error naming the key and the allowed values.

This table is generated from the parser's own table by `scripts/update_docs.sh`
(`build/bin/mst config --keys`); a test fails when it is out of date.

HEAD
  "$MST" config --keys
} > docs/config.md
echo "wrote docs/config.md"
