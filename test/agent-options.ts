/**
 * `weft agent <args>` parsed as main() parses it, with the options recorded
 * instead of the agent run: for tests of the command line.
 */
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram, normalizeArgv } from '../src/cli/main';

export function agentCommand(program: Command): Command {
  const agent = program.commands.find((c) => c.name() === 'agent');
  assert.ok(agent !== undefined, 'no agent subcommand');
  return agent;
}

export function parseAgent(args: string[]): Record<string, unknown> {
  const program = buildProgram();
  const agent = agentCommand(program);
  let seen: Record<string, unknown> | undefined;
  agent.action((options: Record<string, unknown>) => {
    seen = options;
  });
  for (const c of [program, agent]) {
    c.exitOverride();
    c.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  }
  program.parse(normalizeArgv(['agent', ...args]), { from: 'user' });
  assert.ok(seen !== undefined, 'the agent action did not run');
  return seen;
}
