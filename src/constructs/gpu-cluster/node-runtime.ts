// The Node.js runtime hosts run the agent on: a supported LTS, pinned with the sha256 of its official
// tarballs (nodejs.org/dist/v<version>/SHASUMS256.txt; as mirrored in Paketo's node-engine
// buildpack.toml). Node 20 reached end of life in 2026-04; 24 is LTS until 2028-04.
export const DEFAULT_NODE_VERSION = '24.18.1';

/** sha256 of node-v<version>-linux-<arch>.tar.xz, by version and `uname -m` architecture. */
export const NODE_TARBALL_SHA256: Readonly<Record<string, { readonly x64: string; readonly arm64: string }>> = {
  '24.18.1': {
    x64: 'd6c664df3f3f61458e8c277585571328522d705166723a7c7823a9253a4d15a0',
    arm64: '7201e3a09dc825bac57867c81913e2b8f0ef87d04cb9082af4cda82f6ff3d88c',
  },
};

/** The Kubernetes agent image: the same Node.js release, Debian bookworm. */
export const DEFAULT_AGENT_IMAGE = `node:${DEFAULT_NODE_VERSION}-bookworm-slim`;
