/** The `proggan` command line: yargs command modules; heavy code loads only inside handlers. */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { errorMessage, UsageError } from '../util/errors.js';
import { completeCommand, evaluateCommand, extendCommand, sampleCommand } from './complete.js';
import { generateCommand, showersCommand, validateCommand } from './gan3d.js';
import { trainCommand } from './train.js';

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
      process.stderr.write(`${y.help() ? '' : ''}${msg}\n\nRun \`proggan --help\` for usage.\n`);
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
