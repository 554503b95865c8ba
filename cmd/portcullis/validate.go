package main

import (
	"fmt"
	"io"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/filters"
)

func runValidate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", "Check a policy document: decode it strictly, validate it and compile every stage, exactly\n"+
		"as serve would. Each problem is printed on its own line as FILE:LINE:COL: path.to.field: message\n"+
		"(exit 1); a valid document prints one summary line (exit 0).", stderr)
	boot := config.NewBootstrap(fs)
	if code, done := parseOnlyFlags(fs, args); done {
		return code
	}
	doc, err := boot.Load()
	if err == nil {
		var c *filters.Compiled
		c, err = filters.Build(doc, filters.Deps{Offline: true}) // validate fetches nothing
		if err == nil {
			_ = c.Table.Close()
		}
	}
	if err != nil {
		printConfigErrors(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: valid: %d routes, %d policies, %d API keys\n",
		doc.Source, len(doc.Routes), len(doc.Policies), len(doc.Providers.APIKeys))
	return 0
}
