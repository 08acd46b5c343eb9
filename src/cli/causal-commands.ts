// CLI commands of the causal area (registered by main.ts).
import type { Command } from 'commander';

export function registerCausalCommands(program: Command): void {
  void program;
}
