#!/usr/bin/env bash
# Checks for a Rust toolchain new enough for the workspace (edition 2024).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

NEED="1.88"
if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] && fail "cargo is in ~/.cargo/bin but not on PATH: run '. \"\$HOME/.cargo/env\"' and retry"
    fail "Rust is not installed. Debian 12's own 'cargo' package (1.63) is too old for this workspace;
       install Rust $NEED or later with rustup (https://rustup.rs), then retry"
fi
have="$(cargo --version | awk '{print $2}')"
if [ "$(printf '%s\n%s\n' "$NEED" "$have" | sort -V | head -n1)" != "$NEED" ]; then
    fail "cargo $have is too old: this workspace needs Rust $NEED or later ('rustup update stable')"
fi
say "Rust: cargo $have"
