// Package vfs is the small file-system interface the store writes its log through, with a real implementation and a strict in-memory disk that loses unsynced writes on a simulated crash.
package vfs
