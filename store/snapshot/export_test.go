package snapshot

import "bytes"

// VerifyBytes and StatusBytes run Verify and Status on an in-memory file (for
// the fuzz target).
func VerifyBytes(b []byte) error { return verify(bytes.NewReader(b), int64(len(b))) }

// StatusBytes is Status on an in-memory file.
func StatusBytes(b []byte) (DBStatus, error) { return scan(bytes.NewReader(b), int64(len(b))) }
