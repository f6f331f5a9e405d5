#!/usr/bin/env bash
# Installs what dm's quick start and tests need on Debian (MariaDB server and client, etcd,
# protoc, Chromium and ChromeDriver), if missing, then builds dm (release). `--deps-only` skips the build; `--bench` also installs the
# peers the benchmarks run (sysbench, mydumper). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
# Cluster tests run real etcd; building etcd-client needs protoc.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
# Tests look at etcd from outside with etcdctl (what a client without a certificate sees).
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# Tests import dumps mydumper writes (task-mode load&sync).
command -v mydumper >/dev/null 2>&1 || need+=(mydumper)
# Tests run pt-online-schema-change on the source (online-ddl).
command -v pt-online-schema-change >/dev/null 2>&1 || need+=(percona-toolkit)
# Browser tests drive the web console in headless Chromium through ChromeDriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ "${1:-}" = "--bench" ]; then
  command -v sysbench >/dev/null 2>&1 || need+=(sysbench)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Debian's package would start a system server: policy-rc.d keeps it from doing so.
  DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Plugins (examples, tests) build for wasm32.
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi

# The test command checks formatting and lints before it tests.
for component in rustfmt clippy; do
  if command -v rustup >/dev/null 2>&1 && ! rustup component list --installed | grep -q "^$component"; then
    echo "setup: adding the $component Rust component"
    rustup component add "$component"
  fi
done

[ "${1:-}" = "--deps-only" ] && exit 0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dm-target}"
cargo build --release --bin dm
echo "setup: dm built at $CARGO_TARGET_DIR/release/dm"
