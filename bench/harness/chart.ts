/**
 * The chart: one panel per headline metric (TCP 1 and 4 streams, UDP
 * packets per second, latency, CPU per Gbit), a bar per mode at the median
 * with a whisker from min to max and the value written on top. Drawn with
 * vega-lite -> vega, rendered headless to SVG (no canvas, no native build).
 */
import { pathToFileURL } from 'node:url';
import type { Spread } from './figures';

/** A headline metric and how to show it. */
export interface ChartPanel {
  readonly key: string;
  readonly title: string;
  readonly unit: string;
  readonly better: 'higher' | 'lower';
  readonly digits: number;
}

export interface ChartInput {
  readonly title: string;
  readonly subtitle: readonly string[];
  readonly modes: readonly string[];
  readonly panels: readonly ChartPanel[];
  readonly summaries: ReadonlyMap<string, Record<string, Spread>>;
}

interface Row {
  readonly mode: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly label: string;
}

/** The vega-lite specification (exported for inspection and tests). */
export function chartSpec(input: ChartInput): Record<string, unknown> {
  const panels = input.panels.map((panel) => {
    const rows: Row[] = [];
    for (const mode of input.modes) {
      const s = input.summaries.get(mode)?.[panel.key];
      if (s === undefined) continue;
      rows.push({ mode, median: s.median, min: s.min, max: s.max, label: s.median.toFixed(panel.digits) });
    }
    return {
      title: { text: panel.title, subtitle: `${panel.unit}, ${panel.better} is better` },
      width: Math.max(180, 48 * input.modes.length),
      height: 220,
      data: { values: rows },
      encoding: {
        x: { field: 'mode', type: 'nominal', sort: [...input.modes], axis: { title: null, labelAngle: -30, labelLimit: 160 } },
      },
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            y: { field: 'median', type: 'quantitative', title: panel.unit },
            color: { field: 'mode', type: 'nominal', sort: [...input.modes], legend: null, scale: { scheme: 'tableau10' } },
          },
        },
        { mark: { type: 'rule', color: '#333' }, encoding: { y: { field: 'min', type: 'quantitative' }, y2: { field: 'max' } } },
        {
          mark: { type: 'text', baseline: 'bottom', dy: -3, fontSize: 11 },
          encoding: { y: { field: 'max', type: 'quantitative' }, text: { field: 'label' } },
        },
      ],
    };
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: input.title, subtitle: [...input.subtitle], anchor: 'start', fontSize: 16 },
    background: 'white',
    padding: 12,
    columns: 3,
    concat: panels,
    config: { view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 12 }, title: { subtitleFontSize: 11 } },
  };
}

interface VegaModule {
  parse(spec: unknown): unknown;
  View: new (runtime: unknown, options: { renderer: string }) => { toSVG(): Promise<string>; finalize(): void };
}
interface VegaLiteModule {
  compile(spec: unknown): { spec: unknown };
}

/**
 * import() that TypeScript's commonjs output leaves alone (vega 6 is ES modules
 * with top-level await, which require() refuses), of a package found from here.
 */
const dynamicImport = new Function('url', 'return import(url)') as (url: string) => Promise<unknown>;
const importPackage = (name: string): Promise<unknown> => dynamicImport(pathToFileURL(require.resolve(name)).href);

/** Renders the chart to SVG; throws when vega / vega-lite are not installed (npm install). */
export async function renderChartSvg(input: ChartInput): Promise<string> {
  let vega: VegaModule;
  let vl: VegaLiteModule;
  try {
    vega = (await importPackage('vega')) as VegaModule;
    vl = (await importPackage('vega-lite')) as VegaLiteModule;
  } catch (err) {
    throw new Error(`the chart needs the npm packages vega and vega-lite (run \`npm install\` in weft's directory): ${(err as Error).message}`);
  }
  const view = new vega.View(vega.parse(vl.compile(chartSpec(input)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
