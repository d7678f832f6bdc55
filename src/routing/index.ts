/** The overlay route table: editable on the agent side, compiled for the packet path in workers. */
export { CompiledRoutes, RouteTable } from './route-table';
export type { Peer, RouteEntry, RouteSnapshot } from './route-table';
