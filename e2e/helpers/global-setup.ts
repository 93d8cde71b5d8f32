// Builds the `keta` binary once for all workers (skipped when KETA_BIN is set).
import { ketaBinary } from './server';

export default async function globalSetup() {
  process.env.KETA_BIN = ketaBinary();
}
