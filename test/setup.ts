import { Testing } from 'cdktf';

Testing.setupJest();

// cdktf records a full stack trace for every token it creates (for its error messages), and under
// Jest every trace is mapped through source maps: half of a synth's time in tests. The traces are
// never part of the output; a token error still names the token and its path.
jest.mock('cdktf/lib/tokens/private/stack-trace', () => ({ captureStackTrace: () => [] }));
