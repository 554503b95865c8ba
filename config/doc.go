// Package config is Portcullis's policy document: the YAML model (version 1), its
// strict decoding, defaults, validation and the bootstrap settings that locate it.
//
// Decoding walks yaml.v3 node trees, so every key is checked against the schema on
// every level (an unknown key is an error, wherever it is) and every problem is
// reported with its file, line, column and YAML path, all at once:
//
//	policy.yaml:42:7: routes[1].policy: unknown policy "apii"
//
// Defaults are the starting value of every field; a key present in the file replaces
// its default (so an empty string can switch a listener off). Secrets never appear in
// the document: fields of type Secret hold a reference (env:NAME or file:PATH) that is
// resolved when the registry builds the stages.
//
// viper is used for bootstrap settings only (the document path and PORTCULLIS_*
// overrides of a few scalars); it never reads the document, because it lowercases map
// keys. This package imports the standard library, yaml.v3 and viper only.
package config
