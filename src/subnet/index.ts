export * from './net-config';
export * from './subnet-env';
