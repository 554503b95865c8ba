// Command portcullis is the sidecar security proxy: one binary with subcommands to
// serve, validate configuration, mint API keys and development tokens, and sign requests.
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command is one subcommand: it parses its own flags from args and returns the exit code.
type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run the sidecar (proxy, ext_authz/RLS gRPC, forward-auth, admin)", runServe},
		"validate": {"check a configuration file and print every problem as FILE:LINE:COL: path: message", runValidate},
		"keys":     {"manage API keys (keys new --subject S)", runKeys},
		"sign":     {"sign a request for an hmac provider and print its headers and a curl command", runSign},
		"token":    {"development JWTs: token new signs one, token inspect decodes and checks one", runToken},
		"version":  {"print the version", runVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: portcullis <command> [flags]\n\ncommands:")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'portcullis <command> --help' for a command's flags.")
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	}
	cmd, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "portcullis: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:], stdout, stderr)
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", "print the version", stderr)
	if code, done := parseOnlyFlags(fs, args); done {
		return code
	}
	fmt.Fprintf(stdout, "portcullis %s\n", version)
	return 0
}
