package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"github.com/mayfly-im/mayfly/gateway/client"
	"github.com/mayfly-im/mayfly/schema"
	"github.com/mayfly-im/mayfly/schema/payload"
)

// fileLine is one attached file in read --json and listen --json lines.
type fileLine struct {
	Name string `json:"name"`
	Type string `json:"type,omitempty"`
	Size int64  `json:"size"`
	// Path is where read --save wrote it; absent when not saved.
	Path string `json:"path,omitempty"`
}

// splitFileFlags takes send's --file PATH (or --file=PATH) arguments out
// of args, up to a "--" that ends them; the rest is HANDLE and TEXT.
func splitFileFlags(args []string) (paths, rest []string, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return paths, append(rest, args[i+1:]...), nil
		case a == "--file" || a == "-file":
			if i+1 == len(args) {
				return nil, nil, usageError("--file needs a PATH")
			}
			paths = append(paths, args[i+1])
			i++
		case strings.HasPrefix(a, "--file=") || strings.HasPrefix(a, "-file="):
			_, p, _ := strings.Cut(a, "=")
			paths = append(paths, p)
		default:
			rest = append(rest, a)
		}
	}
	return paths, rest, nil
}

// loadFiles reads the files to attach, refusing before any upload a file
// over the limit or more files than a message carries.
func loadFiles(paths []string) ([]client.Attachment, error) {
	if len(paths) > payload.MaxFiles {
		return nil, usageError("a message carries at most %d files", payload.MaxFiles)
	}
	var out []client.Attachment
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", p, err)
		}
		if !st.Mode().IsRegular() {
			return nil, usageError("%s is not a regular file", p)
		}
		if st.Size() > payload.MaxFileSize {
			return nil, schema.Errorf(schema.CodeAttachmentTooLarge, fmt.Sprintf("%s is %d bytes; a file is at most %d (25 MiB)", p, st.Size(), payload.MaxFileSize))
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("attach %s: %w", p, err)
		}
		out = append(out, client.Attachment{Name: filepath.Base(p), Type: mediaType(p, data), Data: data})
	}
	return out, nil
}

// mediaType guesses a file's media type from its extension, else its bytes.
func mediaType(path string, data []byte) string {
	if t := mime.TypeByExtension(strings.ToLower(filepath.Ext(path))); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil {
			return mt
		}
	}
	mt, _, _ := mime.ParseMediaType(http.DetectContentType(data))
	return mt
}

// fileLines lists m's files, unsaved.
func fileLines(m client.Message) []fileLine {
	var out []fileLine
	for _, f := range m.Files {
		out = append(out, fileLine{Name: safeName(f.Name), Type: f.Type, Size: f.Size})
	}
	return out
}

// saveFiles downloads m's files into dir, each under a sanitized name that
// does not exist yet, and returns their lines with paths. On an error
// nothing more is saved; files saved already stay.
func saveFiles(ctx context.Context, cl *client.Client, dir string, m client.Message) ([]fileLine, error) {
	lines := fileLines(m)
	for i, f := range m.Files {
		data, err := cl.Download(ctx, f)
		if err != nil {
			return lines, fmt.Errorf("file %q: %w", lines[i].Name, err)
		}
		path, err := writeNew(dir, lines[i].Name, data)
		if err != nil {
			return lines, err
		}
		lines[i].Path = path
	}
	return lines, nil
}

// writeNew writes data to a new file named name in dir, or "name (2).ext"
// and so on when that exists: it never overwrites. The file is mode 0600.
func writeNew(dir, name string, data []byte) (string, error) {
	ext := filepath.Ext(name)
	base := strings.TrimSuffix(name, ext)
	for n := 1; n <= 1000; n++ {
		try := name
		if n > 1 {
			try = base + " (" + strconv.Itoa(n) + ")" + ext
		}
		path := filepath.Join(dir, try)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("save %s: %w", path, err)
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
			return "", fmt.Errorf("save %s: %w", path, err)
		}
		return path, nil
	}
	return "", fmt.Errorf("save %s: 1000 files of that name exist in %s", name, dir)
}

// maxNameLen bounds a saved file's name, in bytes.
const maxNameLen = 120

// safeName turns a sender's file name into one safe to create in a
// directory: no path (a sender's "../x" or "/etc/x" becomes "x"), no
// control or invisible format characters, no leading dots or spaces (no
// hidden files, never "." or ".."), at most maxNameLen bytes with its
// extension kept; "file" when nothing is left.
func safeName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar || r == ':' {
			return -1
		}
		return r
	}, strings.ToValidUTF8(name, ""))
	name = strings.TrimLeft(strings.TrimSpace(name), ". ")
	if len(name) > maxNameLen {
		ext := filepath.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		cut := maxNameLen - len(ext)
		for cut > 0 && !isRuneStart(name[cut]) {
			cut--
		}
		name = name[:cut] + ext
	}
	if name == "" {
		return "file"
	}
	return name
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
