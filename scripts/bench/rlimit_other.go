//go:build !unix

package main

import "errors"

// raiseFileLimit: the open-file limit is a Unix setting; the bench's connection counts assume it.
func raiseFileLimit() (uint64, error) {
	return 0, errors.New("the open-file limit can be raised on Unix only")
}
