//go:build !unix

package embedded

import "os"

// tryLock always succeeds where flock is not available: two servers on one
// store directory are not detected there.
func tryLock(*os.File) (bool, error) { return true, nil }

func unlock(*os.File) error { return nil }
