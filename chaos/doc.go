// Package chaos describes faults as replayable data (partitions, crashes, pauses, message loss, clock skew) and draws fault schedules from a seed.
package chaos
