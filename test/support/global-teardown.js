const { rmSync } = require('fs');

module.exports = async () => {
  if (process.env.MLINFRA_EXAMPLES_CACHE) rmSync(process.env.MLINFRA_EXAMPLES_CACHE, { recursive: true, force: true });
};
