#!/usr/bin/env node
// Compile every contracts/src/**/*.sol with the pinned solc-js and write
// contracts/artifacts/<ContractName>.json = {contractName, sourceName, abi, bytecode,
// deployedBytecode, solcVersion, evmVersion, optimizer}.
//
//   node contracts/scripts/compile.mjs           # (re)write artifacts
//   node contracts/scripts/compile.mjs --check   # compile in memory; exit 1 if any artifact
//                                                # is stale, missing or orphaned
//
// Output is deterministic: sources are named by their path relative to contracts/
// ("src/X.sol"), so the metadata hash does not depend on where the repo is checked out.
import { readFileSync, writeFileSync, readdirSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC_DIR = join(ROOT, "src");
const ART_DIR = join(ROOT, "artifacts");

// Cancun, not Prague: Prague (EIP-7702, BLS precompiles, EIP-2935) adds no opcode that solc
// emits, so the bytecode is identical for bttd. Sources meant for TRON (src/tron/) compile for
// Shanghai: solc emits MCOPY for cancun, which TRON's TVM does not run by default. See
// docs/contracts.md.
export const EVM_VERSION = "cancun";
export const TRON_EVM_VERSION = "shanghai";
const TRON_DIR = "tron/";
export const OPTIMIZER = { enabled: true, runs: 200 };

// Every .sol under src/, subfolders included (src/test/ holds test-only contracts), as paths
// relative to src/.
function sourceFiles(dir = SRC_DIR, prefix = "") {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) files.push(...sourceFiles(join(dir, entry.name), `${prefix}${entry.name}/`));
    else if (entry.name.endsWith(".sol")) files.push(`${prefix}${entry.name}`);
  }
  return files.sort();
}

// One solc run per EVM version: src/tron/ for TRON, everything else for bttd.
function compile() {
  const files = sourceFiles();
  const artifacts = new Map(); // file name -> JSON text
  const passes = [
    [EVM_VERSION, files.filter((f) => !f.startsWith(TRON_DIR))],
    [TRON_EVM_VERSION, files.filter((f) => f.startsWith(TRON_DIR))],
  ];
  for (const [evmVersion, group] of passes) {
    if (group.length > 0) compilePass(evmVersion, group, artifacts);
  }
  return artifacts;
}

function compilePass(evmVersion, files, artifacts) {
  const sources = {};
  for (const f of files) {
    sources[`src/${f}`] = { content: readFileSync(join(SRC_DIR, f), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: OPTIMIZER,
      evmVersion,
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));
  const errors = (output.errors ?? []).filter((e) => e.severity === "error");
  for (const e of output.errors ?? []) console.error(e.formattedMessage);
  if (errors.length > 0) {
    console.error(`compile.mjs: ${errors.length} compilation error(s)`);
    process.exit(2);
  }

  for (const [sourceName, contracts] of Object.entries(output.contracts ?? {})) {
    for (const [contractName, c] of Object.entries(contracts)) {
      const file = `${contractName}.json`;
      if (artifacts.has(file)) throw new Error(`duplicate contract name ${contractName}`);
      const artifact = {
        contractName,
        sourceName,
        solcVersion: solc.version(),
        evmVersion,
        optimizer: OPTIMIZER,
        abi: c.abi,
        bytecode: `0x${c.evm.bytecode.object}`,
        deployedBytecode: `0x${c.evm.deployedBytecode.object}`,
      };
      artifacts.set(file, `${JSON.stringify(artifact, null, 2)}\n`);
    }
  }
}

// Imports resolve relative to contracts/ (e.g. `import "src/IFoo.sol";` or "./IFoo.sol").
function findImport(path) {
  const p = join(ROOT, path);
  return existsSync(p) ? { contents: readFileSync(p, "utf8") } : { error: `not found: ${path}` };
}

function check(artifacts) {
  const problems = [];
  for (const [file, text] of artifacts) {
    const p = join(ART_DIR, file);
    if (!existsSync(p)) problems.push(`missing: artifacts/${file}`);
    else if (readFileSync(p, "utf8") !== text) problems.push(`stale:   artifacts/${file}`);
  }
  const existing = existsSync(ART_DIR) ? readdirSync(ART_DIR).filter((f) => f.endsWith(".json")) : [];
  for (const f of existing) if (!artifacts.has(f)) problems.push(`orphan:  artifacts/${f} (no contract in src/)`);
  if (problems.length > 0) {
    console.error("contract artifacts are out of date; run `node contracts/scripts/compile.mjs`:");
    for (const p of problems) console.error(`  ${p}`);
    process.exit(1);
  }
  console.log(`artifacts up to date (${artifacts.size} contracts, solc ${solc.version()}, evm ${EVM_VERSION}, ${TRON_DIR} for ${TRON_EVM_VERSION})`);
}

function write(artifacts) {
  mkdirSync(ART_DIR, { recursive: true });
  for (const [file, text] of artifacts) {
    writeFileSync(join(ART_DIR, file), text);
    console.log(`wrote artifacts/${file}`);
  }
}

const artifacts = compile();
if (process.argv.includes("--check")) check(artifacts);
else write(artifacts);
