export * from './prices';
export * from './report';
