/**
 * Store locations: a path opens the filesystem backend. (The S3 backend adds `s3://`.)
 */
import { resolve } from 'node:path';
import { badArgument } from '../errors.js';
import { openFsBackend } from './fs.js';
import type { Backend } from './types.js';

export interface OpenBackendOptions {
  s3Endpoint?: string;
  create?: boolean;
  forcePathStyle?: boolean;
}

export async function openBackend(location: string, options: OpenBackendOptions = {}): Promise<Backend> {
  if (typeof location !== 'string' || location.length === 0) throw badArgument('a store location is required');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) throw badArgument(`${location}: this build opens stores in directories only`);
  return openFsBackend(resolve(location), { create: options.create });
}
