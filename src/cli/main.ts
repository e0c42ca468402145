/** The `proggan` command line: yargs command modules; heavy code loads only inside handlers. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { errorMessage, UsageError } from '../util/errors.js';
import { completeCommand, evaluateCommand, extendCommand, sampleCommand } from './complete.js';
import { generateCommand, showersCommand, validateCommand } from './gan3d.js';
import { infoCommand } from './info.js';
import { plotCommand } from './plot.js';
import { trainCommand, trainFlagNames } from './train.js';
import { withSuggestions } from './suggest.js';

/** Run the CLI on `argv` (without node and script). */
export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName('proggan')
    .usage('$0 <command> [options]')
    .command(trainCommand)
    .command(completeCommand)
    .command(extendCommand)
    .command(sampleCommand)
    .command(evaluateCommand)
    .command(infoCommand)
    .command(plotCommand)
    .command(showersCommand)
    .command(validateCommand)
    .command(generateCommand)
    .demandCommand(1, 'Name a command, e.g. `proggan train wae --preset tiny`.')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .epilog('Logs are JSON lines on stdout (pipe through pino-pretty), or log.jsonl in the run directory on a terminal.')
    .fail((msg, err, y) => {
      if (err) throw err;
      // Mistyped flags get the nearest known one; the command is the first word that is not a flag.
      const command = argv.find((a) => !a.startsWith('-')) ?? '';
      const known = command === 'train' ? trainFlagNames() : [];
      process.stderr.write(`${y.help() ? '' : ''}${withSuggestions(msg, known)}\n\nRun \`proggan ${command ? `${command} ` : ''}--help\` for usage.\n`);
      process.exit(2);
    })
    .parseAsync();
}

/** Entry point of bin/proggan.js. */
export function run(): void {
  main(hideBin(process.argv)).catch((err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`proggan: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`proggan: ${errorMessage(err)}\n`);
    if (process.env['PROGGAN_DEBUG'] && err instanceof Error) process.stderr.write(`${err.stack ?? ''}\n`);
    process.exit(1);
  });
}
