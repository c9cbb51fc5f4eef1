// Package vfs is the small file-system interface the store writes its log
// through, with a real implementation (OS) and a strict in-memory disk (Mem)
// that loses unsynced writes on a simulated crash.
//
// Contract shared by every implementation (checked by vfstest.TestFS):
//
//   - Paths are slash-separated and cleaned with path.Clean.
//   - File data is durable only after File.Sync; creates, renames and removes
//     are durable only after SyncDir on the directory holding the name.
//     MkdirAll is the exception: it returns only once every directory it
//     created is durable, so callers can treat directories as setup.
//   - Missing names give errors wrapping fs.ErrNotExist, names that must not
//     exist give errors wrapping fs.ErrExist, a full disk gives an error
//     wrapping ErrNoSpace (and syscall.ENOSPC), a closed handle ErrClosed.
//   - Mem also injects the simulator's disk faults (FailSyncs: EIO with
//     Linux's fsyncgate semantics; Fill: ENOSPC; SetSyncLatency: slow
//     fsync; OnSync: a hook to crash in the middle of a write); every error
//     a fault causes wraps ErrInjected as well as its errno.
//   - A File is used by one goroutine at a time; Mem is not safe for
//     concurrent use at all (the simulator drives it from one goroutine).
package vfs
