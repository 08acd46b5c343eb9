// CLI commands of the detect area (registered by main.ts).
import type { Command } from 'commander';

export function registerDetectCommands(program: Command): void {
  void program;
}
