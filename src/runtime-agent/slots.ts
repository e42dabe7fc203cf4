import * as path from 'node:path';
import { badRequest } from './errors';
import { schemeOf } from './storage/index';
import type { JobSpec } from './types';

/** GPU slots (by index) and CPU-only job slots (a count). */
export class Slots {
  private readonly freeGpus: Set<number>;
  private cpuInUse = 0;

  constructor(private readonly gpus: number, private readonly maxCpuJobs: number) {
    this.freeGpus = new Set(Array.from({ length: gpus }, (_, i) => i));
  }

  get gpusBusy(): number {
    return this.gpus - this.freeGpus.size;
  }

  get cpuBusy(): number {
    return this.cpuInUse;
  }

  fits(gpus: number): boolean {
    return gpus === 0 ? this.cpuInUse < this.maxCpuJobs : this.freeGpus.size >= gpus;
  }

  /** Takes the lowest free GPU indexes (or one CPU slot for gpus 0). */
  take(gpus: number): number[] {
    if (gpus === 0) {
      this.cpuInUse++;
      return [];
    }
    const slots = [...this.freeGpus].sort((a, b) => a - b).slice(0, gpus);
    for (const s of slots) this.freeGpus.delete(s);
    return slots;
  }

  /** Takes the given GPU indexes (a run re-attached after a restart keeps its GPUs), or one CPU slot. */
  takeExact(gpus: number, ids: readonly number[]): number[] {
    if (gpus === 0) {
      this.cpuInUse++;
      return [];
    }
    for (const s of ids) this.freeGpus.delete(s);
    return [...ids];
  }

  release(gpus: number, slots: number[]): void {
    if (gpus === 0) this.cpuInUse--;
    for (const s of slots) this.freeGpus.add(s);
  }
}

/** Checks what the body schema cannot: GPUs against the host, batch prefixes, URI schemes, cwd. Throws 400 naming the field. */
export function checkSpec(spec: JobSpec, hostGpus: number): void {
  if (spec.gpus > hostGpus) throw badRequest(`the job wants ${spec.gpus} GPUs but this host has ${hostGpus}`, 'gpus');
  if (spec.kind === 'batch') {
    if (!spec.input) throw badRequest('a batch job needs an input prefix', 'input');
    if (!spec.output) throw badRequest('a batch job needs an output prefix', 'output');
  }
  for (const field of ['input', 'output', 'artifactUri', 'checkpointDir'] as const) {
    const v = spec[field];
    if (v === undefined) continue;
    try {
      schemeOf(v);
    } catch (e) {
      throw badRequest((e as Error).message, field);
    }
  }
  if (spec.cwd !== undefined && !path.isAbsolute(spec.cwd)) throw badRequest('cwd must be an absolute path', 'cwd');
}
