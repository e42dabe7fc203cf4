/**
 * The picture of a stack: our constructs and targets as nodes; as edges, what runs on which target,
 * who is granted what on whom, who watches whom, and who uses whose resources. Grants come from the
 * grant facts constructs record as metadata (core/facts.ts), and are also derived from the synthesized
 * tree: an IAM policy, IAM member, RoleBinding or NetworkPolicy under one construct that references
 * another construct's resources is a grant between the two, labelled by the grant fact that named it.
 */
import { TerraformStack } from 'cdktf';
import { IConstruct } from 'constructs';
import { mkdirSync, writeFileSync } from 'fs';
import { join } from 'path';
import { edgeFacts, grantFacts } from '../../core/facts';
import { recordedGrants } from '../../core/graph';
import { configOf, elementsOf, isTargetKind, ourConstructs, ourKind, OurKind, ownerOf } from './tree';

export interface GraphNode {
  /** The construct path: unique, and what the DOT node is named. */
  readonly id: string;
  readonly kind: OurKind;
  /** The path of the node's target, for constructs on one. */
  readonly target?: string;
}

export type EdgeKind = 'on' | 'grant' | 'watches' | 'uses';

export interface GraphEdge {
  readonly from: string;
  readonly to: string;
  readonly kind: EdgeKind;
  /** Detail: the grant's kind (read, invoke, ...). */
  readonly label?: string;
}

export interface StackGraph {
  readonly stack: string;
  readonly nodes: readonly GraphNode[];
  readonly edges: readonly GraphEdge[];
}

/** Resources whose holder is the grantee: the policy sits on the grantee's role and names the owner's ARNs. */
const GRANTEE_HELD = new Set(['aws_iam_role_policy', 'aws_iam_policy_document', 'aws_iam_policy']);
/** Resources whose holder is the owner: a member, binding or ingress rule names the grantee. */
const OWNER_HELD = /(_iam_member|_iam_binding|^kubernetes_role_binding|^kubernetes_cluster_role_binding|^kubernetes_network_policy)/;
/** Where a member-style grant names its grantee. */
const granteeField = (cfg: Record<string, any>) => cfg.member ?? cfg.members ?? cfg.subject ?? cfg.spec?.ingress; // eslint-disable-line @typescript-eslint/no-explicit-any
const REF = /\$\{(data\.)?([a-z0-9_]+)\.([A-Za-z0-9_-]+)/g;

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The graph of `stack`, sorted: the same tree always gives the same graph. */
export function stackGraph(stack: TerraformStack): StackGraph {
  const ours = ourConstructs(stack);
  const inStack = new Set(ours);
  const nodes: GraphNode[] = ours.map((c) => {
    const t = (c as { target?: IConstruct }).target;
    return { id: c.node.path, kind: ourKind(c)!, target: t && inStack.has(t) ? t.node.path : undefined };
  });
  const edges = new Map<string, GraphEdge>();
  const edge = (e: GraphEdge) => {
    if (e.from === e.to) return;
    const key = `${e.from}\u0000${e.to}\u0000${e.kind}\u0000${e.label ?? ''}`;
    edges.set(key, e);
  };
  for (const n of nodes) if (n.target) edge({ from: n.id, to: n.target, kind: 'on' });
  // Edges constructs record (a pipeline runs on its cluster, ...).
  for (const c of ours) {
    for (const f of edgeFacts(c)) {
      const kind: EdgeKind = f.kind === 'grant' ? 'grant' : f.kind;
      if (inStack.has(f.to)) edge({ from: c.node.path, to: f.to.node.path, kind, label: f.label });
    }
  }

  // Recorded grants (exact, when constructs record them).
  for (const g of recordedGrants(stack)) {
    if (inStack.has(g.from) && inStack.has(g.to)) edge({ from: g.from.node.path, to: g.to.node.path, kind: 'grant', label: g.kind });
  }

  // Derived from the tree: references between resources owned by different constructs. A resource
  // a grant created sits under a path segment named by the grant's id (`<id>` or `<id>-doc`).
  const grantKinds = new Map<string, string>();
  for (const c of stack.node.findAll()) for (const g of grantFacts(c)) if (g.id) grantKinds.set(g.path ?? g.id, g.kind);
  const grantKindOf = (path: string) => {
    const segs = path.split('/');
    return segs.map((seg, i) => {
      const at = [...segs.slice(0, i), seg.replace(/-doc$/, '')].join('/');
      return grantKinds.get(at) ?? grantKinds.get(seg) ?? grantKinds.get(seg.replace(/-doc$/, ''));
    }).find((k) => k);
  };
  const elements = elementsOf(stack);
  const ownerByRef = new Map<string, IConstruct>();
  for (const e of elements) {
    const o = ownerOf(e.el);
    if (o) ownerByRef.set(`${e.data ? 'data.' : ''}${e.type}.${e.logicalId}`, o);
  }
  for (const e of elements) {
    const a = ownerOf(e.el);
    if (!a || isTargetKind(ourKind(a))) continue;
    const cfg = configOf(e.el);
    const refsIn = (text: string) => {
      const refs = new Set<IConstruct>();
      for (const m of text.matchAll(REF)) {
        const b = ownerByRef.get(`${m[1] ?? ''}${m[2]}.${m[3]}`);
        if (b && b !== a && !isTargetKind(ourKind(b))) refs.add(b);
      }
      return refs;
    };
    const text = JSON.stringify(cfg);
    const refs = refsIn(text);
    if (!refs.size) continue;
    const grantees = refsIn(JSON.stringify(granteeField(cfg) ?? ''));
    const grantKind = grantKindOf(e.el.node.path);
    for (const b of refs) {
      if (ourKind(a) === 'MonitoringStack') edge({ from: a.node.path, to: b.node.path, kind: 'watches' });
      else if (GRANTEE_HELD.has(e.type)) edge({ from: a.node.path, to: b.node.path, kind: 'grant', label: grantKind });
      // A member names the grantee: B when the member field points at B, else this construct itself.
      else if (OWNER_HELD.test(e.type)) edge(grantees.has(b) ? { from: b.node.path, to: a.node.path, kind: 'grant', label: grantKind } : { from: a.node.path, to: b.node.path, kind: 'grant', label: grantKind });
      else edge({ from: a.node.path, to: b.node.path, kind: 'uses' });
    }
  }
  // An edge without a label adds nothing where the same pair has a labelled one of its kind.
  const all = [...edges.values()].filter((e) => !(!e.label
    && [...edges.values()].some((o) => o.kind === e.kind && o.label && o.from === e.from && o.to === e.to)));
  all.sort((x, y) => cmp(x.from, y.from) || cmp(x.to, y.to) || cmp(x.kind, y.kind) || cmp(x.label ?? '', y.label ?? ''));
  nodes.sort((x, y) => cmp(x.id, y.id));
  return { stack: stack.node.id, nodes, edges: all };
}

const SHAPES: Record<OurKind, string> = {
  AwsTarget: 'tab', GcpTarget: 'tab', KubernetesTarget: 'tab',
  GpuCluster: 'box3d', FeatureStore: 'cylinder', ModelEndpoint: 'component', TrainingPipeline: 'cds', MonitoringStack: 'note',
};
const COLORS: Record<OurKind, string> = {
  AwsTarget: '#ff9900', GcpTarget: '#4285f4', KubernetesTarget: '#326ce5',
  GpuCluster: '#76b900', FeatureStore: '#8e44ad', ModelEndpoint: '#e74c3c', TrainingPipeline: '#16a085', MonitoringStack: '#7f8c8d',
};
const EDGE_STYLE: Record<EdgeKind, string> = {
  on: 'style=dotted, color="#999999", arrowhead=none',
  grant: 'color="#c0392b", penwidth=1.6',
  watches: 'style=dashed, color="#7f8c8d"',
  uses: 'color="#34495e"',
};

/** DOT strings: quotes and backslashes escaped, newlines as DOT's own escape. */
const q = (s: string) => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/** The graph in Graphviz DOT, one node per construct, targets grouped with what runs on them. */
export function renderDot(g: StackGraph): string {
  const out = [`digraph ${q(g.stack)} {`, '  graph [rankdir=LR, fontname="Helvetica", labelloc=t, label=' + q(`stack ${g.stack}`) + '];',
    '  node [fontname="Helvetica", fontsize=11, style=filled, fillcolor="#ffffff"];', '  edge [fontname="Helvetica", fontsize=9];'];
  const targets = g.nodes.filter((n) => isTargetKind(n.kind));
  const placed = new Set<string>();
  const node = (n: GraphNode, indent: string) => {
    const name = n.id.split('/').slice(1).join('/') || n.id;
    out.push(`${indent}${q(n.id)} [label=${q(`${name}\n${n.kind}`)}, shape=${SHAPES[n.kind]}, color=${q(COLORS[n.kind])}, penwidth=2];`);
    placed.add(n.id);
  };
  targets.forEach((t, i) => {
    out.push(`  subgraph ${q(`cluster_${i}`)} {`, `    label=${q(t.id)};`, '    style=rounded; color="#cccccc";');
    node(t, '    ');
    for (const n of g.nodes) if (n.target === t.id) node(n, '    ');
    out.push('  }');
  });
  for (const n of g.nodes) if (!placed.has(n.id)) node(n, '  ');
  for (const e of g.edges) {
    const label = e.kind === 'on' ? '' : `, label=${q(e.label ? `${e.kind} ${e.label}` : e.kind)}`;
    out.push(`  ${q(e.from)} -> ${q(e.to)} [${EDGE_STYLE[e.kind]}${label}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

/** Renders DOT to SVG with Graphviz compiled to WebAssembly (@viz-js/viz); throws Graphviz's errors. */
export async function renderSvg(dot: string): Promise<string> {
  const viz = await (await import('@viz-js/viz')).instance();
  const r = viz.render(dot, { format: 'svg' });
  if (r.status !== 'success') throw new Error(`graphviz: ${r.errors.map((e) => e.message).join('; ')}`);
  return r.output;
}

/** Writes `<outdir>/stacks/<stack>/picture.dot` and `picture.svg`; returns the DOT text. */
export async function writePicture(stack: TerraformStack, outdir: string): Promise<string> {
  const dot = renderDot(stackGraph(stack));
  const svg = await renderSvg(dot);
  const dir = join(outdir, 'stacks', stack.node.id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'picture.dot'), dot);
  writeFileSync(join(dir, 'picture.svg'), svg);
  return dot;
}
