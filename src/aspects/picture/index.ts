export * from './graph';
export { ourKind, OurKind } from './tree';
