package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// newFlagSet returns a flag set whose -h/--help prints the summary and flags.
func newFlagSet(name, summary string, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: portcullis %s [flags]\n\n%s\n\nflags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; done is true when the command must exit with code (help: 0,
// bad flags: 2).
// parseOnlyFlags is parseFlags for a command that takes no arguments besides its
// flags: a stray one is an error (exit 2), so "portcullis validate new.yaml" does not
// quietly check the default document instead of new.yaml.
func parseOnlyFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if code, done := parseFlags(fs, args); done {
		return code, done
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q (flags only; the document is --config FILE)\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

func parseFlags(fs *flag.FlagSet, args []string) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}
