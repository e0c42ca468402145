/** Distributed training: the strategy seam, collectives on typed arrays, transports and cluster description. */
export * from './strategy.js';
export * from './transport.js';
export * from './collectives.js';
export * from './tcp.js';
export * from './shm.js';
export * from './cluster.js';
export * from './mirrored.js';
export * from './launcher.js';
export * from './auth.js';
export * from './supervised.js';
export * from './mpi.js';
