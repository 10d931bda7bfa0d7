/**
 * Docker flags Shoal cannot honour (yet): each is accepted by the parser, so the user never
 * reads "unknown option" for a Docker flag, and refused in one line that says why.
 */
import type { Command } from 'commander';
import { ShoalError } from '../shared/errors.ts';

export interface RefusedFlag {
  /** As commander spells it: "-p, --publish <port>", "--tty". */
  flag: string;
  reason: string;
}

export function unsupportedFlag(flag: string, reason: string): ShoalError {
  const name = /--[\w-]+/.exec(flag)?.[0] ?? flag;
  return new ShoalError('invalid', 'unsupported_flag', `${name} is not supported: ${reason}`);
}

/** Adds each refused flag to the command; giving one stops the parse with its reason. */
export function refuseFlags(command: Command, refused: readonly RefusedFlag[]): Command {
  for (const { flag, reason } of refused) {
    const takesValue = /[<[]/.test(flag);
    const description = `not supported: ${reason}`;
    if (takesValue) {
      command.option(flag, description, () => {
        throw unsupportedFlag(flag, reason);
      });
    } else {
      command.option(flag, description);
      const attribute = /--([\w-]+)/.exec(flag)![1]!;
      command.on(`option:${attribute}`, () => {
        throw unsupportedFlag(flag, reason);
      });
    }
  }
  return command;
}
