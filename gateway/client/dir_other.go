//go:build !unix

package client

import "os"

// lockFileExclusive does nothing where flock is missing: processes sharing
// a Dir there must not refresh at the same moment.
func lockFileExclusive(*os.File) error { return nil }
