package tests

import "regexp"

func re(s string) *regexp.Regexp { return regexp.MustCompile(s) }
