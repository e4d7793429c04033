package main

import (
	"embed"
	"io/fs"
)

//go:embed static
var embedded embed.FS

// staticFiles is the browser client, served at the root.
func staticFiles() fs.FS {
	sub, err := fs.Sub(embedded, "static")
	if err != nil {
		panic(err) // the directory is embedded above; this cannot fail
	}
	return sub
}
