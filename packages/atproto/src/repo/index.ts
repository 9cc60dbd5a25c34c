/**
 * The repository engine's public surface, in one import (`@portage/atproto/repo/index`):
 * block stores, the writer (`Repo`), commits, CAR export and verified import, record proofs,
 * and the MST for code that needs the tree itself. See each module's header for the details.
 */
export {
  BlockMap,
  type BlockReader,
  type BlockStore,
  cidKey,
  MemoryBlockStore,
  type RevisionedBlockSource,
} from './block-store.ts';
export {
  type Commit,
  type CommitBlock,
  decodeCommit,
  encodeCommit,
  signCommit,
  verifyCommitSignature,
} from './commit.ts';
export { RepoError, type RepoErrorCode } from './errors.ts';
export { exportRepo, exportRepoSince, recordProofBlocks, recordProofCar, repoBlocks, treeBlocks } from './export.ts';
export {
  type ImportedRecord,
  type ImportOptions,
  importRepo,
  MAX_IMPORT_BLOCK_SIZE,
  type StagedRepo,
  stageRepo,
  type TreeVisitor,
  type VerifiedRepo,
  verifyRepo,
} from './import.ts';
export {
  type CommitOptions,
  type CommitResult,
  MAX_WRITES_PER_COMMIT,
  type RecordWrite,
  Repo,
  type RepoOp,
} from './repo.ts';
export { diffTrees, type MstDiff, type RecordOp } from '../mst/diff.ts';
export { findMstKeyProblem, isValidMstKey, keyHeight, MstError } from '../mst/keys.ts';
export { coveringProof, recordPathNodes } from '../mst/proof.ts';
export { Leaf, Mst } from '../mst/tree.ts';
