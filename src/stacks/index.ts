export * from './ml-platform-stack';
