/**
 * Imported first by every entry point, so an older Node.js refuses in one line before a
 * dependency fails obscurely (libp2p 3 needs Promise.withResolvers, ink 8 and ava 8 Node 22).
 */
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`shoal: needs Node.js 24 or newer, this is ${process.version} (${process.execPath}); run it through bin/shoal or bin/shoal-node (scripts/bootstrap.sh installs Node.js 24 into .tools/)\n`);
  process.exit(1);
}
export {};
