/**
 * Cost report: the monthly list price of a stack's constructs at min and max scale, on demand and on
 * spot. Scale-driven items are the cost facts each construct's backend records (core/facts.ts);
 * per-resource items are priced by resource type from ./prices. Every line carries its arithmetic
 * (unit price x quantity x hours) so a reader, or a test, can redo it.
 */
import { TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { TargetKind } from '../../core/accelerators';
import { costFacts } from '../../core/facts';
import { Target } from '../../core/targets';
import { GpuCluster } from '../../constructs/gpu-cluster';
import { configOf, elementsOf, isTargetKind, ourConstructs, ourKind, OurKind, ownerOf } from '../picture/tree';
import {
  BIGTABLE_NODE, ELASTICACHE_PRICES, ELASTICACHE_SOURCE, GCP_CLOUD_NAT_PER_VM, HOURS_PER_MONTH, MEMORYSTORE_BASIC_GIB,
  RESOURCE_PRICES, SPOT_FRACTION, SPOT_SOURCE,
} from './prices';

export interface MonthlyUsd {
  readonly min: number;
  readonly max: number;
  /** The same scale with spot-capable items at their spot share. */
  readonly spotMin: number;
  readonly spotMax: number;
}

/** One priced item: monthly = unitUsd x quantity x hours (hours is 1 for monthly prices). */
export interface CostLine {
  /** Construct path of the owner (one of our constructs or targets), or the stack for anything else. */
  readonly construct: string;
  readonly constructType: OurKind | 'other';
  readonly item: string;
  readonly unitUsd: number;
  readonly per: 'hour' | 'month';
  readonly quantity: { readonly min: number; readonly max: number };
  readonly hours: number;
  /** Share of on-demand paid on spot: 1 where spot does not apply. */
  readonly spotFraction: number;
  readonly monthlyUsd: MonthlyUsd;
  readonly source: string;
  readonly asOf: string;
  readonly estimate?: boolean;
  readonly note?: string;
}

export interface ConstructCost {
  readonly path: string;
  readonly type: OurKind | 'other';
  readonly monthlyUsd: MonthlyUsd;
}

export interface CostReport {
  readonly stack: string;
  readonly currency: 'USD';
  readonly hoursPerMonth: number;
  readonly spotFraction: Readonly<Record<TargetKind, number>>;
  readonly lines: readonly CostLine[];
  readonly constructs: readonly ConstructCost[];
  readonly total: MonthlyUsd;
  readonly notes: readonly string[];
}

export interface CostReportOptions {
  /** Spot price as a share of on-demand, per target kind. @default SPOT_FRACTION (0.35 everywhere) */
  readonly spotFraction?: Partial<Record<TargetKind, number>>;
  /** @default 730 */
  readonly hoursPerMonth?: number;
}

const NOTES = [
  'List prices, us-east-1 / us-central1, USD; no discounts, taxes, storage, requests or traffic.',
  'min: every autoscaled item at its lower bound; max: at its upper bound. Usage-priced items (DynamoDB on demand, Lambda-like calls, LCUs) are 0 at rest.',
  'Kubernetes: GPU pods are priced at the catalog per-GPU share of a cloud node; CPU pods and the cluster itself are not priced.',
];

const cents = (n: number) => Math.round(n * 100) / 100;

/** The cost report of `stack`: finds our constructs by instanceof and prices what they created. */
export function costReport(stack: TerraformStack, options: CostReportOptions = {}): CostReport {
  const hours = options.hoursPerMonth ?? HOURS_PER_MONTH;
  const spot: Record<TargetKind, number> = { ...SPOT_FRACTION, ...options.spotFraction };
  const lines: CostLine[] = [];
  const add = (owner: IConstruct | undefined, l: Omit<CostLine, 'construct' | 'constructType' | 'monthlyUsd' | 'hours' | 'spotFraction'> & { spotFraction?: number }) => {
    const h = l.per === 'hour' ? hours : 1;
    const f = l.spotFraction ?? 1;
    const m = (q: number) => l.unitUsd * q * h;
    lines.push({
      construct: owner?.node.path ?? stack.node.path,
      constructType: (owner && ourKind(owner)) ?? 'other',
      ...l, hours: h, spotFraction: f,
      monthlyUsd: { min: cents(m(l.quantity.min)), max: cents(m(l.quantity.max)), spotMin: cents(m(l.quantity.min) * f), spotMax: cents(m(l.quantity.max) * f) },
    });
  };
  const fixed = (n: number) => ({ min: n, max: n });

  // Scale-driven items: the cost facts each construct's backend recorded (core/facts.ts).
  const ours = ourConstructs(stack);
  for (const c of ours) {
    const facts = costFacts(c);
    const kind = (c as { target?: Target }).target?.kind;
    for (const f of facts) {
      add(c, {
        item: f.item, unitUsd: f.unitUsd, per: f.per, quantity: { ...f.quantity },
        ...(f.spot && kind ? { spotFraction: spot[kind] } : {}),
        source: f.source, asOf: f.asOf, estimate: f.estimate,
        note: f.spot ? `${f.note ? `${f.note}; ` : ''}spot share: ${SPOT_SOURCE.source}` : f.note,
      });
    }
  }

  // Per-resource items: every resource priced by type, owned by the nearest of our constructs.
  const gcpNat = new Map<Target, IConstruct>();
  for (const { el, type, data } of elementsOf(stack)) {
    if (data) continue;
    const owner = ownerOf(el);
    const p = RESOURCE_PRICES[type];
    if (p) {
      add(owner, { item: p.item, unitUsd: p.usd, per: p.per, quantity: fixed(1), source: p.source, asOf: p.asOf });
      continue;
    }
    const cfg = () => configOf(el);
    switch (type) {
      case 'aws_dynamodb_table':
        add(owner, { item: 'DynamoDB table (on demand)', unitUsd: 0, per: 'month', quantity: fixed(1), source: 'https://aws.amazon.com/dynamodb/pricing/on-demand/', asOf: '2025-06-01', note: 'usage-priced: 0 at rest' });
        break;
      case 'aws_elasticache_replication_group': {
        const c = cfg();
        const nodeType = String(c.node_type);
        const n = Number(c.num_cache_clusters ?? 1);
        const price = ELASTICACHE_PRICES[nodeType];
        add(owner, {
          item: `ElastiCache ${nodeType} node`, unitUsd: price ?? 0, per: 'hour', quantity: fixed(n), ...ELASTICACHE_SOURCE,
          note: price === undefined ? `${nodeType} is not in the price table: priced 0` : undefined,
        });
        break;
      }
      case 'google_bigtable_instance':
        for (const cl of cfg().cluster ?? []) {
          const a = cl.autoscaling_config;
          const q = a ? { min: Number(a.min_nodes), max: Number(a.max_nodes) } : fixed(Number(cl.num_nodes ?? 1));
          add(owner, { item: `Bigtable node (${cl.cluster_id})`, unitUsd: BIGTABLE_NODE.usd, per: 'hour', quantity: q, source: BIGTABLE_NODE.source, asOf: BIGTABLE_NODE.asOf });
        }
        break;
      case 'google_redis_instance': {
        const c = cfg();
        add(owner, {
          item: `Memorystore Redis GiB (${c.tier ?? 'BASIC'})`, unitUsd: MEMORYSTORE_BASIC_GIB.usd, per: 'hour', quantity: fixed(Number(c.memory_size_gb)),
          source: MEMORYSTORE_BASIC_GIB.source, asOf: MEMORYSTORE_BASIC_GIB.asOf, estimate: c.tier === 'STANDARD_HA' || undefined,
          note: c.tier === 'STANDARD_HA' ? 'Standard tier priced at the Basic rate: the real figure is higher' : undefined,
        });
        break;
      }
      case 'google_compute_router_nat': {
        const t = owner && isTargetKind(ourKind(owner)) ? (owner as Target) : undefined;
        if (t) gcpNat.set(t, owner!);
        break;
      }
    }
  }
  // Cloud NAT bills per VM behind it: the GPU nodes of the clusters on that target.
  for (const [target, owner] of gcpNat) {
    const clusters = ours.filter((c): c is GpuCluster => c instanceof GpuCluster && c.target === target);
    const vms = (pick: (c: GpuCluster) => number) => Math.min(32, clusters.reduce((s, c) => s + pick(c), 0));
    add(owner, {
      item: 'Cloud NAT (per VM behind it)', unitUsd: GCP_CLOUD_NAT_PER_VM.usd, per: 'hour', quantity: { min: vms((c) => c.nodes.min), max: vms((c) => c.nodes.max) },
      source: GCP_CLOUD_NAT_PER_VM.source, asOf: GCP_CLOUD_NAT_PER_VM.asOf,
    });
  }

  // Every construct of ours appears, with a zero line where nothing of it has a price at rest.
  for (const c of ours) {
    if (isTargetKind(ourKind(c)) || lines.some((l) => l.construct === c.node.path)) continue;
    add(c, { item: 'nothing priced at rest', unitUsd: 0, per: 'month', quantity: fixed(1), source: 'usage-priced, or runs on your own nodes', asOf: '-' });
  }

  // Order: by construct path, then item; stable across runs.
  lines.sort((a, b) => (a.construct < b.construct ? -1 : a.construct > b.construct ? 1 : a.item < b.item ? -1 : a.item > b.item ? 1 : 0));
  const sum = (ls: readonly CostLine[]): MonthlyUsd => ({
    min: cents(ls.reduce((s, l) => s + l.monthlyUsd.min, 0)),
    max: cents(ls.reduce((s, l) => s + l.monthlyUsd.max, 0)),
    spotMin: cents(ls.reduce((s, l) => s + l.monthlyUsd.spotMin, 0)),
    spotMax: cents(ls.reduce((s, l) => s + l.monthlyUsd.spotMax, 0)),
  });
  const paths = [...new Set(lines.map((l) => l.construct))];
  const constructs = paths.map((path) => {
    const ls = lines.filter((l) => l.construct === path);
    return { path, type: ls[0].constructType, monthlyUsd: sum(ls) };
  });
  return { stack: stack.node.id, currency: 'USD', hoursPerMonth: hours, spotFraction: spot, lines, constructs, total: sum(lines), notes: NOTES };
}

const usd = (n: number) => n.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** The report as a text table, for the terminal after synth. */
export function formatCostReport(r: CostReport): string {
  const rows = r.lines.map((l) => [
    l.construct, l.item, `${l.unitUsd}/${l.per === 'hour' ? 'h' : 'mo'}`,
    l.quantity.min === l.quantity.max ? `${l.quantity.min}` : `${l.quantity.min}..${l.quantity.max}`,
    usd(l.monthlyUsd.min), usd(l.monthlyUsd.max), l.spotFraction === 1 ? '' : `${usd(l.monthlyUsd.spotMin)}..${usd(l.monthlyUsd.spotMax)}`,
  ]);
  const head = ['construct', 'item', 'unit', 'qty', 'min/mo', 'max/mo', 'spot/mo'];
  const all = [head, ...rows, ['total', '', '', '', usd(r.total.min), usd(r.total.max), `${usd(r.total.spotMin)}..${usd(r.total.spotMax)}`]];
  const widths = head.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const right = new Set([2, 3, 4, 5, 6]);
  const fmt = (row: string[]) => row.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [`cost of ${r.stack}: USD per month (${r.hoursPerMonth} h), list prices`, fmt(head), ...rows.map(fmt), fmt(all[all.length - 1])].join('\n') + '\n';
}

/** Writes `<outdir>/stacks/<stack>/cost.json` (beside cdk.tf.json) and returns the report. */
export function writeCostReport(stack: TerraformStack, outdir: string, options?: CostReportOptions): CostReport {
  const report = costReport(stack, options);
  const dir = join(outdir, 'stacks', stack.node.id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cost.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

/** One row per construct: what `npm run synth` prints (the lines are in cost.json). */
export function formatCostSummary(r: CostReport): string {
  const rows = r.constructs.map((c) => [c.path, c.type, usd(c.monthlyUsd.min), usd(c.monthlyUsd.max), `${usd(c.monthlyUsd.spotMin)}..${usd(c.monthlyUsd.spotMax)}`]);
  const all = [['construct', 'type', 'min/mo', 'max/mo', 'spot/mo'], ...rows, ['total', '', usd(r.total.min), usd(r.total.max), `${usd(r.total.spotMin)}..${usd(r.total.spotMax)}`]];
  const widths = all[0].map((_, i) => Math.max(...all.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [`cost of ${r.stack}: USD per month (${r.hoursPerMonth} h), list prices`, ...all.map(fmt)].join('\n') + '\n';
}
