#!/usr/bin/env bash
# Install the agent CLIs the packaging tests drive (Claude Code, Gemini CLI, Codex, MCP Inspector)
# at pinned versions into a cache prefix, so tests and CI use the same builds and no global npm state.
#
#   scripts/install_agent_clis.sh            # install what is missing, print the bin directory
#   scripts/install_agent_clis.sh --check    # exit 1 if anything is missing or at another version
#
# Prefix: ${TUNEFORGE_NPM_PREFIX:-${TUNEFORGE_TEST_CACHE:-$HOME/.cache/tuneforge-test}/npm}; the
# binaries land in $PREFIX/bin (tests look there first). Idempotent: a second run with everything
# at the pinned versions makes no network call and takes well under a second.
set -euo pipefail

# Bump these deliberately: tests/test_packaging_clients.py runs the binaries from $PREFIX/bin.
PINS=(
  "@anthropic-ai/claude-code@2.1.330"
  "@google/gemini-cli@0.61.0"
  "@openai/codex@0.169.0"
  "@modelcontextprotocol/inspector@0.15.0"
)

CACHE="${TUNEFORGE_TEST_CACHE:-$HOME/.cache/tuneforge-test}"
PREFIX="${TUNEFORGE_NPM_PREFIX:-$CACHE/npm}"
CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

if ! command -v npm >/dev/null 2>&1; then
  echo "install_agent_clis: npm is not on PATH; install Node.js 20+ (https://nodejs.org) first." >&2
  exit 1
fi

# One node call compares every pin with what the prefix holds and prints the specs to install.
mapfile -t missing < <(node -e '
  const fs = require("fs"), path = require("path");
  const [prefix, ...pins] = process.argv.slice(1);
  for (const spec of pins) {
    const at = spec.lastIndexOf("@"), name = spec.slice(0, at), want = spec.slice(at + 1);
    let have = "";
    try { have = JSON.parse(fs.readFileSync(path.join(prefix, "lib", "node_modules", name, "package.json"))).version; } catch (e) {}
    if (have !== want) console.log(spec);
  }' "$PREFIX" "${PINS[@]}")

if ((${#missing[@]} == 0)); then
  echo "$PREFIX/bin"
  exit 0
fi
if ((CHECK_ONLY)); then
  echo "install_agent_clis: missing or at another version: ${missing[*]}" >&2
  exit 1
fi

mkdir -p "$PREFIX"
# --prefix keeps everything under the cache; engine warnings (claude-code asks for Node 22) are not fatal.
npm install --global --prefix "$PREFIX" --no-fund --no-audit --loglevel=error "${missing[@]}" >&2
echo "$PREFIX/bin"
