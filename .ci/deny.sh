#!/usr/bin/env bash
# CI: supply chain checks with cargo-deny (configuration in deny.toml).
# - licenses, bans (duplicates are warnings), sources: always, and they must pass.
# - advisories: offline against a local checkout of the RustSec database at
#   ~/.cache/fahwa-tools/advisory-db when there is one; otherwise cargo-deny fetches the
#   database itself, and if that fails the advisories check is skipped (one line says so).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="$HOME/.cache/fahwa-tools"
# Pinned: deny.toml follows this version's schema and flags (0.20 dropped --disable-fetch
# for the global --offline), and the database directory name below is derived the way
# this version derives it.
DENY_VERSION="0.20.2"
export PATH="$TOOLS/bin:$PATH"

log() { printf '\n==> %s\n' "$*"; }

if [ "$("$TOOLS/bin/cargo-deny" --version 2>/dev/null)" != "cargo-deny $DENY_VERSION" ]; then
  log "installing cargo-deny $DENY_VERSION into $TOOLS"
  nice -n 19 cargo install cargo-deny --locked -j 1 --root "$TOOLS" --version "$DENY_VERSION"
fi
cargo deny --version

log "licenses, bans, sources"
# Duplicates are one line each: the graphs of how each came in would fill the CI log.
cargo deny --locked check --show-stats --hide-inclusion-graph licenses bans sources

log "advisories"
# deny.toml: db-path = ~/.cache/fahwa-tools/advisory-dbs, db-urls = the RustSec database.
# cargo-deny keeps that URL's database in <db-path>/advisory-db-<hash of the URL>.
DBS="$TOOLS/advisory-dbs"
DB_DIR="$DBS/advisory-db-3157b0e258782691"
LOCAL_DB="$TOOLS/advisory-db"
mkdir -p "$DBS"

if git -C "$LOCAL_DB" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  # Use the local checkout as cargo-deny's database (a link, replacing any earlier fetch).
  if [ -e "$DB_DIR" ] && [ ! -L "$DB_DIR" ]; then rm -rf "$DB_DIR"; fi
  ln -sfn "$LOCAL_DB" "$DB_DIR"
  echo "advisory database: local checkout $LOCAL_DB, $(git -C "$LOCAL_DB" log -1 --format='commit %h of %cs')"
  cargo deny --locked --offline check --show-stats advisories
else
  # A link left from a local checkout that is gone would make the clone fail.
  if [ -L "$DB_DIR" ]; then rm -f "$DB_DIR"; fi
  if GIT_TERMINAL_PROMPT=0 timeout 300 cargo deny --locked fetch db; then
    echo "advisory database: fetched, $(git -C "$DB_DIR" log -1 --format='commit %h of %cs')"
    cargo deny --locked --offline check --show-stats advisories
  else
    echo "advisories: SKIPPED, the advisory database could not be fetched (no local checkout at $LOCAL_DB either)"
  fi
fi
