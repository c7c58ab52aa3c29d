// A second process reading a node's database, for machines without the sqlite3 command line (npm test needs only
// Node.js and npm): the same SQLite library the node uses, in a process of its own, answering as `sqlite3` does for
// the two forms the tests use: `sqlite-reader.mjs -json DB QUERY` prints the rows as JSON; `sqlite-reader.mjs DB`
// runs the statements of stdin, one per line, as they arrive, printing each row's values joined by "|".
import Database from 'better-sqlite3';
import { createInterface } from 'node:readline';

const args = process.argv.slice(2);
const json = args[0] === '-json';
const [path, query] = json ? args.slice(1) : args;
const db = new Database(path, { fileMustExist: true });

function run(sql) {
  const statement = db.prepare(sql);
  return statement.reader ? statement.all() : (statement.run(), []);
}

if (query !== undefined) {
  const rows = run(query);
  process.stdout.write(json ? `${rows.length ? JSON.stringify(rows) : ''}\n` : rows.map((r) => Object.values(r).join('|')).join('\n'));
} else {
  for await (const line of createInterface({ input: process.stdin })) {
    for (const sql of line.split(';').map((s) => s.trim()).filter(Boolean)) {
      for (const row of run(sql)) process.stdout.write(`${Object.values(row).join('|')}\n`);
    }
  }
}
db.close();
