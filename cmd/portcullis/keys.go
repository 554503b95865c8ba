package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/portcullis/portcullis/filters/apikey"
)

func runKeys(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "new" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stdout, "usage: portcullis keys new --subject S [--scopes a,b] [--expires DURATION]")
			return 0
		}
		fmt.Fprintln(stderr, "usage: portcullis keys new --subject S [--scopes a,b] [--expires DURATION]")
		return 2
	}
	fs := newFlagSet("keys new", "Mint a new API key. The key is printed once, to give to the client; the YAML entry\n"+
		"for providers.apikeys holds only its SHA-512 hash, so the configuration never contains the key.", stderr)
	subject := fs.String("subject", "", "subject the key authenticates as (required)")
	scopes := fs.String("scopes", "", "comma-separated scopes")
	expires := fs.Duration("expires", 0, "lifetime, e.g. 2160h (0: never expires)")
	if code, done := parseOnlyFlags(fs, args[1:]); done {
		return code
	}
	if *subject == "" {
		fmt.Fprintln(stderr, "keys new: --subject is required")
		return 2
	}
	if *expires < 0 {
		fmt.Fprintln(stderr, "keys new: --expires must be positive")
		return 2
	}
	g, err := apikey.Generate(nil)
	if err != nil {
		fmt.Fprintln(stderr, "keys new:", err)
		return 1
	}
	fmt.Fprintf(stdout, "# API key for %s: give it to the client once; it is not stored anywhere.\n", *subject)
	fmt.Fprintf(stdout, "# key: %s\n", g.Key)
	fmt.Fprintf(stdout, "# Add this entry under providers.apikeys:\n")
	fmt.Fprintf(stdout, "- id: %s\n  subject: %q\n  hash: %q\n", g.ID, *subject, g.Hash)
	if *scopes != "" {
		list := strings.Split(*scopes, ",")
		for i := range list {
			list[i] = fmt.Sprintf("%q", strings.TrimSpace(list[i]))
		}
		fmt.Fprintf(stdout, "  scopes: [%s]\n", strings.Join(list, ", "))
	}
	if *expires > 0 {
		fmt.Fprintf(stdout, "  expires: %s\n", time.Now().Add(*expires).UTC().Format(time.RFC3339))
	}
	return 0
}
