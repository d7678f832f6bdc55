/**
 * Limits on JSON that other writers control (net-conf.json, lease values in
 * a shared etcd): JSON.parse takes any depth and turns numbers beyond float64
 * into Infinity, but walking such a value recursively (freezing it, writing
 * it back) overflows the stack, and Infinity writes back as null. Checked
 * iteratively, once, right after parsing.
 */

/** Far deeper than any flannel configuration or BackendData (two or three levels). */
export const MAX_JSON_DEPTH = 64;

/** What is wrong with a parsed JSON value, or undefined: nesting beyond maxDepth, or a number that is not finite. */
export function jsonValueProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): string | undefined {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v === 'number' && !Number.isFinite(v)) return 'it holds a number too large for a 64-bit float';
    if (typeof v !== 'object' || v === null) continue;
    if (depth > maxDepth) return `it is nested more than ${maxDepth} levels deep`;
    for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) stack.push([child, depth + 1]);
  }
  return undefined;
}
