// Builds and reads a Foundry VTT compendium pack with Foundry's official CLI (its documented API:
// https://www.npmjs.com/package/@foundryvtt/foundryvtt-cli, "API"), for `worldgen export --format foundry`.
//   node pack.mjs compile SOURCE_DIR PACK_DIR   one JSON file per document -> a LevelDB pack
//   node pack.mjs extract PACK_DIR SOURCE_DIR   a LevelDB pack -> one JSON file per document
import { compilePack, extractPack } from "@foundryvtt/foundryvtt-cli";

const [command, src, dest] = process.argv.slice(2);
if (command === "compile" && src && dest) {
  await compilePack(src, dest);
} else if (command === "extract" && src && dest) {
  await extractPack(src, dest);
} else {
  console.error("usage: node pack.mjs compile|extract SRC DEST");
  process.exit(2);
}
