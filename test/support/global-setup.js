// One cache directory per run for test/support/examples.ts; removed by the teardown.
const { mkdtempSync } = require('fs');
const { tmpdir } = require('os');
const { join } = require('path');

module.exports = async () => {
  process.env.MLINFRA_EXAMPLES_CACHE = mkdtempSync(join(tmpdir(), 'mlinfra-examples-'));
};
