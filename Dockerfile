# Image of the auth service: `docker build -t auth-service .`
# The same image runs the server (default command) and the CLIs (node dist/cli/keys.js, users.js):
# plain node, because the runtime image carries no package manager.
# Runs as the image's `node` user (UID 1000) with a read-only root filesystem: the only writable
# paths are /data (DATA_DIR) and /tmp, which the runtime mounts (volume, tmpfs or emptyDir; no
# VOLUME here, so that no anonymous volume appears where the runtime chose a tmpfs).

# Production dependencies only, installed apart so that npm's cache never reaches the final image.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

# Compiles TypeScript to dist/ with the full dependency set.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim
# Memory (docs/operations.md, Memory limits), each measured with npm run bench:
# MALLOC_ARENA_MAX=1: glibc gives each thread that mallocs its own arena and keeps a freed argon2
# block (ARGON2_MEMORY_KIB) in it, so every libuv thread that ever hashed holds one for good; one
# arena returns them. --max-semi-space-size=8 (MiB): V8's young generation grows to 16 MiB per
# semi-space under load; 8 keeps about 17 MiB off the peak at no measurable cost to grants (4 kept
# 8 MiB more off but cost grants 10-25%). Set here, so the service does not restart itself to set
# them (src/users/argon2-memory.ts).
ENV NODE_ENV=production \
    DATA_DIR=/data \
    MALLOC_ARENA_MAX=1 \
    NODE_OPTIONS=--max-semi-space-size=8
WORKDIR /app
# No package manager at run time: nothing here installs code, and npm, npx, corepack and yarn would
# only be tools for whoever gets into the container (and findings for image scanners).
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-v*
# Code stays root-owned so that the service cannot rewrite itself; only /data and /keys belong to node.
# /keys is where compose's keygen writes the shared JWT key (a fresh named volume copies this ownership).
RUN mkdir -p /data /keys && chown node:node /data /keys
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY assets ./assets
# Numeric (the image's `node` user), so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3000 9464
# Plain node (the slim image has no curl). Speaks HTTPS, without verifying the local certificate,
# when the service terminates TLS itself. No --start-period: dockerfilelint 1.8 rejects the option,
# and 3 x 10 s already covers a start-up of a few seconds.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["node", "-e", "const tls = Boolean(process.env.TLS_CERT_FILE); require(tls ? 'node:https' : 'node:http').get({ host: '127.0.0.1', port: process.env.PORT || 3000, path: '/health/live', rejectUnauthorized: false, timeout: 2500 }, (res) => process.exit(res.statusCode === 200 ? 0 : 1)).on('error', () => process.exit(1)).on('timeout', () => process.exit(1))"]
CMD ["node", "dist/server.js"]
