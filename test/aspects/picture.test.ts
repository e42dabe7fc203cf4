import { Testing } from 'cdktf';
import { mkdtempSync, readFileSync, rmSync } from 'fs';
import { tmpdir } from 'os';
import { join } from 'path';
import { renderSvg, stackGraph, renderDot, writePicture } from '../../src/aspects/picture';
import { MlPlatformStack } from '../../src/stacks';
import { build as platforms } from '../../examples/platform/main';

const built = () => platforms(Testing.app()) as MlPlatformStack[];

describe('stack picture', () => {
  const stacks = built();

  test.each([0, 1, 2])('names every construct and target of platform stack %i, with its wiring', (i) => {
    const s = stacks[i];
    const g = stackGraph(s);
    const ids = g.nodes.map((n) => n.id);
    for (const c of [s.target, s.cluster, s.features, s.pipeline, s.endpoint, s.monitoring]) expect(ids).toContain(c.node.path);
    const has = (from: { node: { path: string } }, to: { node: { path: string } }, kind: string, label?: string) =>
      expect(g.edges).toContainEqual(expect.objectContaining({ from: from.node.path, to: to.node.path, kind, ...(label ? { label } : {}) }));
    has(s.cluster, s.features, 'grant', 'read');
    has(s.cluster, s.target, 'on');
    has(s.pipeline, s.cluster, 'uses');
    for (const w of [s.cluster, s.pipeline, s.endpoint]) has(s.monitoring, w, 'watches');
    // The endpoint reads its model from the cluster's artifacts bucket (aws, gcp).
    if (i < 2) has(s.endpoint, s.cluster, 'grant');
    // The cluster's hosts roll promoted versions out to the endpoint (aws, gcp; on Kubernetes the runner does).
    expect(g.edges.filter((e) => e.from === s.cluster.node.path && e.to === s.endpoint.node.path))
      .toEqual(i < 2 ? [{ from: s.cluster.node.path, to: s.endpoint.node.path, kind: 'grant', label: 'rollout' }] : []);
    const dot = renderDot(g);
    for (const id of ids) expect(dot).toContain(`"${id}" [label=`);
    expect(dot.startsWith(`digraph "${s.node.id}" {`)).toBe(true);
    expect((dot.match(/{/g) ?? []).length).toBe((dot.match(/}/g) ?? []).length);
  });

  test('DOT renders with Graphviz; SVG is byte-identical across builds', async () => {
    const a = await renderSvg(renderDot(stackGraph(stacks[0])));
    const b = await renderSvg(renderDot(stackGraph(built()[0])));
    expect(a).toMatch(/^<\?xml[\s\S]*<svg[\s\S]*<\/svg>\s*$/);
    expect(a).toContain('platform&#45;aws/train');
    expect(b).toBe(a);
    await expect(renderSvg('digraph { a -> }')).rejects.toThrow(/graphviz/);
  });

  test('writes picture.dot and picture.svg beside the stack', async () => {
    const out = mkdtempSync(join(tmpdir(), 'mlinfra-picture-'));
    try {
      const dot = await writePicture(stacks[2], out);
      expect(readFileSync(join(out, 'stacks', 'platform-k8s', 'picture.dot'), 'utf8')).toBe(dot);
      expect(readFileSync(join(out, 'stacks', 'platform-k8s', 'picture.svg'), 'utf8')).toContain('<svg');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
